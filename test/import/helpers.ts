// Shared by the import tests: objects put on the test RGW with the SDK (never by tier),
// a daemon on a loop filesystem serving a policy with one tier, `tier import --json`.
import { S3Client, PutObjectCommand, DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { s3TestEnv } from '../helpers/rgw.js';
import { runCli } from '../helpers/daemon.js';

export function sdk(): S3Client {
  const e = s3TestEnv();
  return new S3Client({ endpoint: e.endpoint, region: e.region, forcePathStyle: true, credentials: { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey } });
}

export async function put(c: S3Client, bucket: string, key: string, body: Buffer): Promise<string> {
  const r = await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  return r.ETag!;
}

export async function del(c: S3Client, bucket: string, key: string): Promise<void> {
  await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

export async function head(c: S3Client, bucket: string, key: string): Promise<{ etag: string; lastModified: Date }> {
  const r = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return { etag: r.ETag!, lastModified: r.LastModified! };
}

/** A policy with one s3 tier on the test RGW and one fileset at `root`. */
export function s3Policy(dir: string, root: string, bucket: string, prefix: string, tuning = 'chunk 1MiB readahead 1MiB'): string {
  const e = s3TestEnv();
  const file = join(dir, 'import.hsmpolicy');
  mkdirSync(root, { recursive: true });
  writeFileSync(
    file,
    `tier rgw { s3 bucket "${bucket}" prefix "${prefix}" endpoint "${e.endpoint}" region "${e.region}" path_style true checksum when_required ${tuning} }\n` +
      `fileset data { root "${root}" }\n` +
      `policy p on data {\n  rule none: size < 0B -> keep\n}\n`,
  );
  return file;
}

export interface ImportRun {
  code: number | null;
  items: { kind: string; key: string; path?: string; detail?: string }[];
  summary: { counts: Record<string, number>; listed: number } | null;
  stdout: string;
  stderr: string;
}

export async function tierImport(args: string[]): Promise<ImportRun> {
  const r = await runCli(['import', ...args, '--json']);
  const items: ImportRun['items'] = [];
  let summary: ImportRun['summary'] = null;
  for (const l of r.stdout.trim().split('\n').filter(Boolean)) {
    const e = JSON.parse(l);
    if (e.type === 'item') items.push(e);
    if (e.type === 'summary') summary = e;
  }
  return { code: r.code, items, summary, stdout: r.stdout, stderr: r.stderr };
}
