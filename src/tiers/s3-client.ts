// Builds the S3Client for one tier. What the policy leaves unset stays with the SDK's own
// configuration chain (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, ~/.aws/config,
// AWS_REQUEST_CHECKSUM_CALCULATION, ...). Credentials come only from the default chain.
// callS3: one S3 request with a deadline: the caller's signal combined with our own timeout,
// so no request waits forever (SDK retries happen inside the same deadline). Errors -> TierError.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { S3TierDecl } from '../dsl/ast.js';
import { mapS3Error, type ErrorContext } from './s3-errors.js';

export const MAX_ATTEMPTS = 3; // SDK standard retry: exponential backoff with jitter, retryable errors only

export function makeS3Client(decl: S3TierDecl): { client: S3Client; agents: [HttpAgent, HttpsAgent] } {
  // The SDK warns on Node < 22 about *future* SDK releases; tier pins its SDK version, so the
  // warning would only be noise on every CLI run. Set the variable to 'false' to see it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { timeoutMs, concurrency } = decl.tuning;
  // Keep-alive, and at most `concurrency` sockets per tier: requests beyond it queue.
  const agentOpts = { keepAlive: true, keepAliveMsecs: 1000, maxSockets: Math.max(1, concurrency) };
  const agents: [HttpAgent, HttpsAgent] = [new HttpAgent(agentOpts), new HttpsAgent(agentOpts)];
  const cfg: S3ClientConfig = {
    maxAttempts: MAX_ATTEMPTS,
    retryMode: 'standard',
    requestHandler: {
      httpAgent: agents[0],
      httpsAgent: agents[1],
      connectionTimeout: Math.min(timeoutMs, 10_000),
      requestTimeout: timeoutMs, // request sent -> response headers, per attempt
      throwOnRequestTimeout: true,
      socketTimeout: timeoutMs, // idle socket, also while a response body streams
    },
  };
  if (decl.endpoint) cfg.endpoint = decl.endpoint;
  if (decl.region) cfg.region = decl.region;
  if (decl.profile) cfg.profile = decl.profile;
  if (decl.pathStyle !== undefined) cfg.forcePathStyle = decl.pathStyle;
  if (decl.checksum) {
    const mode = decl.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
    cfg.requestChecksumCalculation = mode;
    cfg.responseChecksumValidation = mode;
  }
  return { client: new S3Client(cfg), agents };
}

export type CallContext = Omit<ErrorContext, 'caller' | 'deadline'>;

export async function callS3<T>(
  c: CallContext,
  caller: AbortSignal | undefined,
  fn: (signal: AbortSignal, started: () => void) => Promise<T>,
  timeoutMs = c.timeoutMs,
): Promise<T> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`deadline of ${timeoutMs} ms passed`)), timeoutMs);
  const signal = caller ? AbortSignal.any([caller, deadline.signal]) : deadline.signal;
  try {
    caller?.throwIfAborted();
    // `started`: a call that resolves only after a response body (s3-direct.ts) says when the
    // response has started; from then on only the socket's idle timeout applies, as below.
    return await fn(signal, () => clearTimeout(timer));
  } catch (e) {
    throw mapS3Error(e, { ...c, timeoutMs, caller, deadline: deadline.signal });
  } finally {
    clearTimeout(timer); // once the response has started, only socket idle timeouts apply
  }
}
