// `tier doctor [DIR] [--state-dir DIR] [--json]`: can tier work here, and how? Tries what
// the daemon would do on DIR's filesystem (a fanotify group and a mark on a scratch file,
// a trusted.* xattr) instead of guessing from version numbers. Exit 0 when usable.
import { closeSync, openSync, rmSync, statfsSync, readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_WHOLE_FILE_FOR } from '../../dsl/ast.js';
import { detectMode } from '../../kernel/detect.js';
import { fgetxattr, fremovexattr, fsetxattr } from '../../kernel/libc.js';
import { connectDaemon } from '../../daemon/client.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { UserError, EXIT } from '../io.js';
import type { RegisterCommand } from './types.js';
import { checkBackings } from './doctor-backing.js';

const FS_TYPES: Record<number, string> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0x6969: 'nfs',
  0xff534d42: 'cifs',
  0x65735546: 'fuse',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
};
const PRE_CONTENT_FS = new Set(['ext4', 'xfs', 'btrfs']);

interface Check {
  name: string;
  ok: boolean;
  warn?: boolean;
  detail: string;
}

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('doctor')
    .description('check whether tier can release and recall files on DIR, and in which mode')
    .argument('[dir]', 'a directory on the filesystem to check', '.')
    .option('--state-dir <dir>', 'where to look for a running daemon', DEFAULT_STATE_DIR)
    .option('--config <file...>', 'policy files whose filesets to check for a backing (default: the running daemon\'s)')
    .option('--json', 'print the checks as a JSON object')
    .action(async (dirArg: string, opts: { stateDir: string; json?: boolean; config?: string[] }) => {
      const dir = resolve(dirArg);
      let fsType: string;
      try {
        const t = statfsSync(dir).type >>> 0;
        fsType = FS_TYPES[t] ?? `unknown (magic 0x${t.toString(16)})`;
      } catch (e) {
        throw new UserError(`${dir}: ${(e as Error).message}`, EXIT.usage);
      }
      const checks = [
        checkRoot(),
        checkKernel(),
        { name: 'filesystem', ok: true, detail: `${fsType} (${dir})` },
        checkMode(dir, fsType),
        checkXattr(dir),
        checkLeaseBreak(),
        checkHoleSkippers(),
        await checkDaemon(resolve(opts.stateDir)),
      ];
      checks.push(checkBackings(opts.config?.map((f) => resolve(f)) ?? (await daemonPolicyFiles(resolve(opts.stateDir))), resolve(opts.stateDir)));
      const usable = checks.filter((c) => c.name !== 'daemon' && c.name !== 'lease-break-time' && c.name !== 'backing' && c.name !== 'hole-skippers').every((c) => c.ok);
      if (opts.json) printer.out(JSON.stringify({ usable, checks }));
      else {
        for (const c of checks) printer.out(`${c.ok ? 'ok  ' : c.warn ? 'warn' : 'FAIL'}  ${c.name.padEnd(17)} ${c.detail}`);
        printer.out(usable ? `tier can work on ${dir}` : `tier cannot work on ${dir} (see FAIL lines)`);
      }
      setExitCode(usable ? EXIT.ok : EXIT.failed);
    });
};

function checkRoot(): Check {
  const uid = process.getuid?.() ?? -1;
  return {
    name: 'root',
    ok: uid === 0,
    detail: uid === 0 ? 'running as root' : `uid ${uid}: fanotify permission events and trusted.* xattrs need root`,
  };
}

function checkKernel(): Check {
  const rel = release();
  const [maj = 0, min = 0] = rel.split('.').map((n) => parseInt(n, 10));
  const pre = maj > 6 || (maj === 6 && min >= 14);
  return {
    name: 'kernel',
    ok: true,
    detail: `${rel} (${pre ? 'has' : 'lacks'} fanotify pre-content events, which need 6.14+)`,
  };
}

function checkMode(dir: string, fsType: string): Check {
  try {
    const r = detectMode(dir);
    const why = r.reasons.length ? `; ${r.reasons.join('; ')}` : '';
    if (r.mode === 'pre-content') return { name: 'recall mode', ok: true, detail: 'pre-content: ranged recall of the bytes read' };
    if (r.mode === 'content') {
      const hint = PRE_CONTENT_FS.has(fsType) ? '' : ` (pre-content events need ext4, xfs or btrfs; this is ${fsType})`;
      return { name: 'recall mode', ok: true, detail: `content fallback: whole file recalled at open${hint}${why}` };
    }
    return { name: 'recall mode', ok: false, detail: `no fanotify permission events here${why}` };
  } catch (e) {
    return { name: 'recall mode', ok: false, detail: `probe in ${dir} failed: ${(e as Error).message}` };
  }
}

function checkXattr(dir: string): Check {
  const file = join(dir, `.tier-doctor-${process.pid}`);
  let fd = -1;
  try {
    writeFileSync(file, '');
    fd = openSync(file, 'r');
    const v = Buffer.from('ok');
    fsetxattr(fd, 'trusted.tier.doctor', v, file);
    const back = fgetxattr(fd, 'trusted.tier.doctor', file);
    fremovexattr(fd, 'trusted.tier.doctor', file);
    if (!back || !back.equals(v)) return { name: 'trusted xattrs', ok: false, detail: 'written but read back differently' };
    return { name: 'trusted xattrs', ok: true, detail: 'trusted.tier.* can be written and read' };
  } catch (e) {
    return { name: 'trusted xattrs', ok: false, detail: `${file}: ${(e as Error).message}` };
  } finally {
    if (fd >= 0) closeSync(fd);
    rmSync(file, { force: true });
  }
}

function checkLeaseBreak(): Check {
  try {
    const s = Number(readFileSync('/proc/sys/fs/lease-break-time', 'utf8').trim());
    return {
      name: 'lease-break-time',
      ok: true,
      detail: `${s} s (how long an opener of a file being released may wait at most; tier unlocks at once on SIGIO)`,
    };
  } catch (e) {
    return { name: 'lease-break-time', ok: false, detail: (e as Error).message };
  }
}

/** The one copy path tier cannot see (docs/recall.md "mmap, exec, copiers"): said here, not hidden. */
function checkHoleSkippers(): Check {
  return {
    name: 'hole-skippers',
    ok: true,
    detail:
      `a program that finds data with SEEK_DATA/SEEK_HOLE (no fanotify event) copies a released file as holes unless its name is in ` +
      `whole_file_for (default: ${DEFAULT_WHOLE_FILE_FOR.join(', ')}); add any other such program there`,
  };
}

async function checkDaemon(stateDir: string): Promise<Check> {
  try {
    const c = await connectDaemon(stateDir);
    if (!c) return { name: 'daemon', ok: false, detail: `not running (no live socket in ${stateDir}): releases are refused` };
    const s = await c.status();
    return { name: 'daemon', ok: true, detail: `running (worker pid ${s.pid}, mode ${s.mode}, state dir ${stateDir})` };
  } catch (e) {
    return { name: 'daemon', ok: false, detail: (e as Error).message };
  }
}

async function daemonPolicyFiles(stateDir: string): Promise<string[]> {
  try {
    return (await (await connectDaemon(stateDir))?.status())?.policyFiles ?? [];
  } catch {
    return [];
  }
}
