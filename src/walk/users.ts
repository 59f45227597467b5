// uid/gid <-> name from /etc/passwd and /etc/group, read once per process (a scan of a
// million files must not spawn or call NSS per file). Unknown ids print as numbers.
import { readFileSync } from 'node:fs';

function parse(file: string): Map<number, string> {
  const m = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return m;
  }
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id !== undefined && /^\d+$/.test(id) && !m.has(Number(id))) m.set(Number(id), name);
  }
  return m;
}

let users: Map<number, string> | null = null;
let groups: Map<number, string> | null = null;

export function userName(uid: number): string {
  users ??= parse('/etc/passwd');
  return users.get(uid) ?? String(uid);
}

export function groupName(gid: number): string {
  groups ??= parse('/etc/group');
  return groups.get(gid) ?? String(gid);
}

function idOf(map: Map<number, string>, name: string): number | null {
  for (const [id, n] of map) if (n === name) return id;
  return null;
}

/** name -> uid from /etc/passwd; null when unknown. */
export function uidOf(name: string): number | null {
  users ??= parse('/etc/passwd');
  return idOf(users, name);
}

/** name -> gid from /etc/group; null when unknown. */
export function gidOf(name: string): number | null {
  groups ??= parse('/etc/group');
  return idOf(groups, name);
}
