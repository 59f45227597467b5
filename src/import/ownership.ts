// Owner and mode of what `tier import` creates (pure): the defaults a cloud-files or
// rclone-mount user expects, and the options that change them (rclone's names: --uid,
// --gid, --file-perms, --dir-perms).
//
// Rules:
// - Default owner and group: those of the import directory (like Windows cloud files,
//   whose placeholders inherit the folder's ACL, and an rclone mount, whose files belong
//   to the user who mounted it). Default modes 0644 and 0755: rclone's 0666/0777 under
//   the usual umask 022.
// - Modes are permission bits only (at most 0777): no setuid, setgid or sticky bit on
//   anything the root daemon creates. Ids are whole numbers below 2^32 - 1 (-1 means
//   "unchanged" to chown).
// - Only new files and directories (and refreshed files) get them: an existing file or
//   directory keeps its owner and mode.

export const DEFAULT_FILE_PERMS = 0o644;
export const DEFAULT_DIR_PERMS = 0o755;
const MAX_ID = 0xfffffffe;

/** What the caller asked for; absent fields take the defaults above. */
export interface OwnershipRequest {
  uid?: number;
  gid?: number;
  filePerms?: number;
  dirPerms?: number;
}

/** Resolved: what every created file and directory gets. */
export interface Ownership {
  uid: number;
  gid: number;
  filePerms: number;
  dirPerms: number;
}

/** The request filled in with the import directory's owner and the default modes. */
export function resolveOwnership(req: OwnershipRequest, dirOwner: { uid: number; gid: number }): Ownership {
  return {
    uid: req.uid ?? dirOwner.uid,
    gid: req.gid ?? dirOwner.gid,
    filePerms: req.filePerms ?? DEFAULT_FILE_PERMS,
    dirPerms: req.dirPerms ?? DEFAULT_DIR_PERMS,
  };
}

/** An octal mode as rclone writes it ("0644", "644", "0o644"); an Error saying why otherwise. */
export function parsePerms(text: string, option: string): number {
  const m = /^(?:0o?)?([0-7]{1,4})$/.exec(text.trim());
  const v = m ? parseInt(m[1]!, 8) : NaN;
  if (!m || v > 0o777) throw new Error(`${option} ${JSON.stringify(text)}: an octal mode of permission bits, at most 0777 (e.g. 0644)`);
  return v;
}

/** A uid/gid as a number or a name looked up with `lookup`; an Error saying why otherwise. */
export function parseId(text: string, option: string, lookup: (name: string) => number | null): number {
  const t = text.trim();
  const v = /^\d+$/.test(t) ? Number(t) : lookup(t);
  if (v === null) throw new Error(`${option} ${JSON.stringify(text)}: no such ${option === '--uid' ? 'user' : 'group'} (a name or a number)`);
  if (!validId(v)) throw new Error(`${option} ${JSON.stringify(text)}: ids are 0 to ${MAX_ID}`);
  return v;
}

export function validId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_ID;
}

export function validPerms(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0o777;
}
