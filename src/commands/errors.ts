import type { Logger } from '../observability/logger.js';
import { FtpError } from '../protocol/errors.js';
import { Code, reply, type Reply } from '../protocol/replies.js';
import { StorageError, type StorageErrorKind } from '../storage/storage.js';

/** The client-facing reply for each storage failure; texts never carry real paths or errno codes. */
const STORAGE_REPLIES: Record<StorageErrorKind, Reply> = {
  'not-found': reply(Code.FileUnavailable, 'No such file or directory'),
  exists: reply(Code.FileUnavailable, 'File or directory already exists'),
  'not-a-directory': reply(Code.FileUnavailable, 'Not a directory'),
  'is-a-directory': reply(Code.FileUnavailable, 'Is a directory'),
  'not-empty': reply(Code.FileUnavailable, 'Directory not empty'),
  permission: reply(Code.FileUnavailable, 'Permission denied'),
  'no-space': reply(Code.InsufficientStorage, 'Insufficient storage space'),
  quota: reply(Code.ExceededStorage, 'Storage quota exceeded'),
  'invalid-name': reply(Code.FileNameNotAllowed, 'File name not allowed'),
  'outside-root': reply(Code.FileUnavailable, 'Permission denied'),
  'invalid-offset': reply(Code.InvalidRestart, 'Restart offset is beyond the end of the file'),
  // Object storage: what S3 cannot do (directory rename, MFMT) is a refusal, not a failure.
  unsupported: reply(Code.FileUnavailable, 'Not supported by the object storage'),
  unavailable: reply(Code.LocalError, 'Storage temporarily unavailable, try again later'),
  io: reply(Code.LocalError, 'Local error in processing'),
};

/** The one place where thrown errors become replies. Unknown errors are logged, never shown. */
export function errorToReply(err: unknown, log: Logger): { reply: Reply; close: boolean } {
  if (err instanceof FtpError) return { reply: err.reply, close: err.closeSession };
  if (err instanceof StorageError) {
    if (err.kind === 'io' || err.kind === 'outside-root' || err.kind === 'unavailable') log.warn({ err }, 'storage refused an operation');
    return { reply: STORAGE_REPLIES[err.kind], close: false };
  }
  log.error({ err }, 'command failed unexpectedly');
  return { reply: reply(Code.LocalError, 'Local error in processing'), close: false };
}
