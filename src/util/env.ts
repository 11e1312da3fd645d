/** Numbers from the environment: a positive safe integer, or the fallback for anything else (unset, 0, "abc", 1e400). */
export function positiveInt(text: string | undefined, fallback: number): number {
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** The same, where 0 is a meaningful setting (a floor turned off). */
export function nonNegativeInt(text: string | undefined, fallback: number): number {
  const n = Number(text);
  return text !== undefined && text !== '' && Number.isSafeInteger(n) && n >= 0 ? n : fallback;
}
