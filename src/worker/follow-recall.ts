// The catalog row of a file the recall service made whole: its state follows the record
// (archived, or dirty when written to meanwhile) at once, not at the next reconcile pass,
// so reports and `tier report --html` count it right. Keeps the rules:
// - only a live row is updated (a deleted one keeps its gc retention), by dev+ino, its path kept;
// - the recorded ctime is left as it was: the recall's writes moved the file's ctime, and
//   a reconcile pass may hash it, which is the stale-copy guard's job, not ours;
// - a failure is logged and costs nothing but a late row (reconcile writes it).
import type { Catalog } from '../engine/catalog.js';
import { rowFromRecord } from '../engine/catalog.js';
import type { Logger } from '../log.js';
import type { StateRecord } from '../record/state-record.js';

export function followRecall(catalog: Catalog, dev: number, ino: number, record: StateRecord, log: Logger): void {
  try {
    const row = catalog.get(dev, ino);
    if (!row || row.deletedAt != null || row.state === record.state) return;
    const next = rowFromRecord({ dev, ino, absPath: row.path, size: row.size }, record, record.state, Date.now());
    if (next) catalog.upsert(next);
  } catch (e) {
    log.warn('recall complete: catalog row not updated (the next reconcile pass will)', { op: 'recall', dev, ino, err: e });
  }
}
