import { type Reply, type ReplyCode, reply } from './replies.js';

/** A failure that has a definite FTP reply. Handlers throw it; the session turns it into the reply. */
export class FtpError extends Error {
  readonly reply: Reply;
  /** The session must close after sending this reply. */
  readonly closeSession: boolean;

  constructor(code: ReplyCode, text: string, options?: { cause?: unknown; closeSession?: boolean }) {
    super(text, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FtpError';
    this.reply = reply(code, text);
    this.closeSession = options?.closeSession ?? false;
  }
}
