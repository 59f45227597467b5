// An event fd shared by its event and the fetches it started (read-ahead outlives the
// answer). Closed when the last holder lets go.
//
// The event's own holder lets go *before* the answer is written: an execve waiting on
// the answer denies writers right after, and would fail with ETXTBSY while our O_RDWR
// event fd is still open. The answer is matched by fd number, so a closed number is
// fine as long as no other event can take it first (close and answer run in one tick).
import { closeSync } from 'node:fs';

export class FdRef {
  private refs = 1;

  constructor(readonly fd: number) {}

  retain(): this {
    if (this.refs <= 0) throw new Error(`fd ${this.fd} already closed`);
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) {
      try {
        closeSync(this.fd);
      } catch {
        // Already closed: nothing to free.
      }
    }
  }

  get open(): boolean {
    return this.refs > 0;
  }
}
