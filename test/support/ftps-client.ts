import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';

/** basic-ftp over explicit FTPS (AUTH TLS, PBSZ 0, PROT P), logged in; rejects with the FTPError of a refused login. */
export async function ftpsLogin(port: number, user: string, password: string, timeoutMs = 10_000): Promise<Client> {
  const client = new Client(timeoutMs);
  try {
    await client.access({ host: '127.0.0.1', port, user, password, secure: true, secureOptions: { rejectUnauthorized: false } });
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
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
