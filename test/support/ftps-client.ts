import { Writable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { Client, type FTPResponse } from 'basic-ftp';

export interface FtpsAccessOptions {
  /** Implicit TLS (TLS from the first byte) instead of AUTH TLS. */
  readonly implicit?: boolean;
  /** Added to `rejectUnauthorized: false`: a TLS version range, a client certificate. */
  readonly secureOptions?: ConnectionOptions;
  readonly timeoutMs?: number;
}

/**
 * basic-ftp logged in over FTPS (explicit: AUTH TLS, PBSZ 0, PROT P, as FileZilla), with the server's greeting;
 * rejects with the FTPError of a refused login, the client closed.
 */
export async function ftpsAccess(
  port: number,
  user: string,
  password: string,
  o: FtpsAccessOptions = {},
): Promise<{ client: Client; welcome: FTPResponse }> {
  const client = new Client(o.timeoutMs ?? 10_000);
  try {
    const welcome = await client.access({
      host: '127.0.0.1',
      port,
      user,
      password,
      secure: o.implicit ? 'implicit' : true,
      secureOptions: { rejectUnauthorized: false, ...o.secureOptions },
    });
    return { client, welcome };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** basic-ftp over explicit FTPS, logged in. */
export async function ftpsLogin(port: number, user: string, password: string, timeoutMs?: number): Promise<Client> {
  return (await ftpsAccess(port, user, password, { timeoutMs })).client;
}

/** A remote file's content as UTF-8 text. */
export async function downloadText(client: Client, remote: string): Promise<string> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  await client.downloadTo(sink, remote);
  return Buffer.concat(chunks).toString('utf8');
}
