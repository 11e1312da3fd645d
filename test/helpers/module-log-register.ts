/** `node --import <this> ...`: installs module-log-hooks.js (see there). */
import { register } from 'node:module';

register('./module-log-hooks.js', import.meta.url);
