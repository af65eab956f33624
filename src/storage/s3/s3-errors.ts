import { StorageError, type StorageErrorKind } from '../storage.js';

interface SdkError {
  readonly name?: string;
  readonly code?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

const KINDS_BY_NAME: ReadonlyMap<string, StorageErrorKind> = new Map([
  ['NoSuchKey', 'not-found'],
  ['NotFound', 'not-found'],
  ['NoSuchUpload', 'not-found'],
  ['AccessDenied', 'permission'],
  ['Forbidden', 'permission'],
  ['InvalidAccessKeyId', 'permission'],
  ['SignatureDoesNotMatch', 'permission'],
  ['NoSuchBucket', 'unavailable'],
  ['SlowDown', 'unavailable'],
  ['Throttling', 'unavailable'],
  ['ThrottlingException', 'unavailable'],
  ['RequestTimeout', 'unavailable'],
  ['RequestTimeTooSkewed', 'unavailable'],
  ['ServiceUnavailable', 'unavailable'],
  ['InternalError', 'unavailable'],
  ['TimeoutError', 'unavailable'],
  // A request given up on (a bounded probe).
  ['AbortError', 'unavailable'],
  ['EntityTooLarge', 'quota'],
  ['QuotaExceeded', 'quota'],
  ['KeyTooLongError', 'invalid-name'],
  // Ceph RGW's answer to a key over 1,024 bytes (AWS says KeyTooLongError).
  ['InvalidObjectName', 'invalid-name'],
  ['InvalidRange', 'invalid-offset'],
]);

// Network failures before any answer: the store is unreachable, which a retry later may not be.
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

function kindOf(err: SdkError): StorageErrorKind {
  const byName = KINDS_BY_NAME.get(err.name ?? '');
  if (byName) return byName;
  if (err.code !== undefined && UNREACHABLE.has(err.code)) return 'unavailable';
  const status = err.$metadata?.httpStatusCode;
  if (status === 404) return 'not-found';
  if (status === 403) return 'permission';
  if (status !== undefined && (status === 429 || status >= 500)) return 'unavailable';
  return 'io';
}

/**
 * Any error from the AWS SDK → a StorageError. The cause kept for the log is a new, plain error naming the
 * operation, the S3 error code and the HTTP status: an SDK error carries the request and response, whose headers
 * must never reach a log.
 */
export function s3StorageError(err: unknown, operation: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  // An error that is no answer of the store (a network or programming error) carries no request: its message is safe.
  const detail = e.$metadata === undefined && err instanceof Error ? `: ${err.message}` : '';
  const cause = new Error(`S3 ${operation}: ${e.name ?? 'error'}${e.code ? ` ${e.code}` : ''}${status ? ` (HTTP ${status})` : ''}${detail}`);
  return new StorageError(kindOf(e), undefined, { cause });
}

