/**
 * Redaction of exec output before it reaches a model: the values of the sandbox's and
 * the command's environment variables (as given to nook), and common credential shapes.
 */
const PATTERNS: RegExp[] = [
  /AKIA[0-9A-Z]{16}/g, // AWS access key id
  /\b(?:sk|rk|pk)-[A-Za-z0-9_-]{16,}\b/g, // API keys in the sk-... family
  /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g, // GitHub tokens
  /\bxox[abprs]-[A-Za-z0-9-]{10,}\b/g, // Slack tokens
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
  /\b(Bearer\s+)[A-Za-z0-9._~+/=-]{16,}/g,
  /\b((?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s'"]{4,}/gi,
];

export const REDACTED = '[REDACTED]';

export function redact(text: string, secrets: string[]): { text: string; count: number } {
  let count = 0;
  let out = text;
  // Longest first, so a secret that contains another is replaced whole.
  for (const s of [...new Set(secrets)].filter((v) => v.length >= 4).sort((a, b) => b.length - a.length)) {
    const parts = out.split(s);
    count += parts.length - 1;
    out = parts.join(REDACTED);
  }
  for (const re of PATTERNS) {
    out = out.replace(re, (match: string, prefix?: string) => {
      count++;
      return typeof prefix === 'string' && match.startsWith(prefix) ? `${prefix}${REDACTED}` : REDACTED;
    });
  }
  return { text: out, count };
}
