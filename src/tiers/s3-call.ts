// One S3 request with a deadline: the caller's signal combined with our own timeout, so no
// request waits forever (SDK retries happen inside the same deadline). Errors -> TierError.
import { mapS3Error, type ErrorContext } from './s3-errors.js';

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
