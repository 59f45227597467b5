// SDK and socket errors -> TierError. Permanent: missing object/bucket, access denied,
// bad digest; worth a retry: timeouts, 5xx, throttling, connection failures.
import { TierError, type TierErrorCode } from './tier.js';

interface SdkErrorLike {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const BY_NAME: Record<string, TierErrorCode> = {
  NoSuchKey: 'NotFound',
  NotFound: 'NotFound',
  NoSuchBucket: 'NotFound',
  NoSuchUpload: 'NotFound',
  AccessDenied: 'AccessDenied',
  InvalidAccessKeyId: 'AccessDenied',
  SignatureDoesNotMatch: 'AccessDenied',
  Forbidden: 'AccessDenied',
  CredentialsProviderError: 'AccessDenied',
  SlowDown: 'Throttled',
  Throttling: 'Throttled',
  ThrottlingException: 'Throttled',
  RequestLimitExceeded: 'Throttled',
  TooManyRequests: 'Throttled',
  BadDigest: 'Corrupt',
  InvalidDigest: 'Corrupt',
  XAmzContentSHA256Mismatch: 'Corrupt', // the body is not the SHA-256 it was signed with
  TimeoutError: 'Timeout',
  RequestTimeout: 'Timeout',
  RequestTimeoutException: 'Timeout',
};

const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export interface ErrorContext {
  op: string;
  tier: string;
  key: string;
  bucket: string;
  caller?: AbortSignal; // the caller's signal: its abort is 'Aborted'
  deadline?: AbortSignal; // our timeout signal: its abort is 'Timeout'
  timeoutMs: number;
}

export function mapS3Error(e: unknown, c: ErrorContext): TierError {
  if (e instanceof TierError) return e;
  const mk = (code: TierErrorCode, detail: string) => new TierError(code, c.op, c.tier, c.key, detail, { cause: e });
  if (c.caller?.aborted) return mk('Aborted', 'aborted by caller');
  if (c.deadline?.aborted) return mk('Timeout', `no answer within ${c.timeoutMs} ms`);
  const err = (e ?? {}) as SdkErrorLike;
  const name = err.name ?? err.Code ?? '';
  const status = err.$metadata?.httpStatusCode;
  const msg = `${name || 'Error'}${status ? ` (HTTP ${status})` : ''}: ${err.message ?? String(e)} [bucket ${c.bucket}]`;
  if (name === 'AbortError') return mk('Aborted', msg);
  if (/region is missing/i.test(err.message ?? '')) {
    return mk('Io', `${msg}; set region in the tier block or AWS_REGION / a profile region`);
  }
  if (name === 'CredentialsProviderError') {
    return mk('AccessDenied', `no credentials from the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws files, container/instance metadata): ${err.message}`);
  }
  const byName = BY_NAME[name];
  if (byName) return mk(byName, msg);
  if (err.code === 'ETIMEDOUT' || err.code === 'ESOCKETTIMEDOUT') return mk('Timeout', msg);
  if (err.code && NET_CODES.has(err.code)) return mk('Unavailable', msg);
  if (/socket hang up|aborted|premature close/i.test(err.message ?? '')) return mk('Unavailable', msg);
  if (status === 404) return mk('NotFound', msg);
  if (status === 403 || status === 401) return mk('AccessDenied', msg);
  if (status === 429) return mk('Throttled', msg);
  if (status === 503 && /slow ?down/i.test(name + (err.message ?? ''))) return mk('Throttled', msg);
  if (status !== undefined && status >= 500) return mk('Unavailable', msg);
  return mk('Io', msg);
}
