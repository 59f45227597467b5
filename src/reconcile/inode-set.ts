// The inodes a reconcile pass found (reconcile.ts adds every file with a record or a row;
// reconcile-gone.ts asks about each row afterwards). 8 bytes per inode, in typed arrays
// per device, sorted once the scan is over: a Set of "dev:ino" strings cost ~65 bytes per
// file on the V8 heap (6.5 MB per 100,000 files at the pass's peak, 650 MB at 10 million).
//
// Rules: add() only before the first has(); duplicates (hard links) are harmless; inode
// numbers are exact as doubles (below 2^53).
export class InodeSet {
  private readonly byDev = new Map<number, { inos: Float64Array; n: number }>();
  private sealed = false;

  add(dev: number, ino: number): void {
    if (this.sealed) throw new Error('InodeSet: add after has');
    let d = this.byDev.get(dev);
    if (!d) this.byDev.set(dev, (d = { inos: new Float64Array(1024), n: 0 }));
    if (d.n === d.inos.length) {
      const grown = new Float64Array(d.inos.length * 2);
      grown.set(d.inos);
      d.inos = grown;
    }
    d.inos[d.n++] = ino;
  }

  has(dev: number, ino: number): boolean {
    if (!this.sealed) {
      for (const d of this.byDev.values()) d.inos = d.inos.slice(0, d.n).sort();
      this.sealed = true;
    }
    const a = this.byDev.get(dev)?.inos;
    if (!a) return false;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = a[mid]!;
      if (v === ino) return true;
      if (v < ino) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}
