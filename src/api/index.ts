export * from './errors.js';
export * from './error-classes.js';
export * from './schemas.js';
export { routes, type RouteName, type RouteDef } from './routes.js';
