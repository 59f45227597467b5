// The one place the DSL touches the filesystem: read a policy file, then parse it.
import { readFile } from 'node:fs/promises';
import { parsePolicy, type ParseResult } from './index.js';

export interface LoadedPolicy extends ParseResult {
  /** The text read, for showing source lines under diagnostics. */
  text: string;
}

/** Raised when the file cannot be read at all (missing, unreadable, a directory). */
export class PolicyReadError extends Error {
  constructor(
    readonly path: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'PolicyReadError';
  }
}

const WHY: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
};

export async function loadPolicyFile(path: string): Promise<LoadedPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = (err.code && WHY[err.code]) ?? err.message;
    throw new PolicyReadError(path, err.code, `cannot read policy ${path}: ${why}${err.code && WHY[err.code] ? ` (${err.code})` : ''}`);
  }
  return { ...parsePolicy(text, path), text };
}
