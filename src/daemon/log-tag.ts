// A logger that adds fixed fields (role, pid) to every line, so the supervisor's and the
// worker's lines on the same stderr can be told apart.
import type { Logger } from '../log.js';

export function tagged(base: Logger, tag: Record<string, unknown>): Logger {
  return {
    debug: (m, f) => base.debug(m, { ...tag, ...f }),
    info: (m, f) => base.info(m, { ...tag, ...f }),
    warn: (m, f) => base.warn(m, { ...tag, ...f }),
    error: (m, f) => base.error(m, { ...tag, ...f }),
  };
}
