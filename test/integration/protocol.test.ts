/*
 * Reply codes and reply formats as a client sees them on the wire, and every FEAT line exercised for real.
 */
import { createHash } from 'node:crypto';
import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawFtpClient, type FtpReply, loggedIn, secureClient } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

let srv: RunningServer;
beforeAll(async () => {
  srv = await startServer();
  await writeFile(path.join(srv.root, 'file.txt'), '0123456789abcdef');
});
afterAll(() => srv.stop());

/** Sends a command and returns its reply exactly as it came over the wire (CRLFs included). */
async function wire(c: RawFtpClient, line: string): Promise<{ reply: FtpReply; raw: string }> {
  let raw = '';
  const capture = (chunk: string | Buffer) => (raw += chunk.toString());
  c.socket.on('data', capture);
  const reply = await c.send(line);
  c.socket.off('data', capture);
  return { reply, raw };
}

function received(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** RETR over EPSV + TLS resuming the control session: the bytes received, after 150 and 226. */
async function download(c: RawFtpClient, name: string): Promise<Buffer> {
  const data = await c.openPassive({ tls: true });
  const body = received(data);
  expect((await c.send(`RETR ${name}`)).code).toBe(150);
  const bytes = await body;
  expect((await c.read()).code).toBe(226);
  return bytes;
}

async function upload(c: RawFtpClient, name: string, content: Buffer | string): Promise<void> {
  const data = await c.openPassive({ tls: true });
  const first = await c.send(`STOR ${name}`);
  expect(first.code).toBe(150);
  data.end(content);
  expect((await c.read()).code).toBe(226);
}

describe('reply codes', () => {
  it.each(['XYZW', 'FOOBAR', 'SITE CHMOD 777 file.txt', 'REIN', 'ACCT x', '12', 'R\u00e9TR file.txt'])(
    'an unknown command (%s) → 502',
    async (line) => {
      const c = await loggedIn(srv.port);
      expect((await c.send(line)).code).toBe(502);
      expect((await c.send('NOOP')).code).toBe(200);
      c.close();
    },
  );

  it('bad sequences → 503', async () => {
    const plain = await RawFtpClient.connect(srv.port);
    expect((await plain.read()).code).toBe(220);
    expect((await plain.send('PBSZ 0')).code).toBe(503);
    expect((await plain.send('PROT P')).code).toBe(503);
    plain.close();

    const c = await secureClient(srv.port);
    expect((await c.send('PASS secret')).code).toBe(503);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('RNTO new.txt')).code).toBe(503);
    // RNFR then an unrelated command then RNTO is still a rename; RNTO twice is not.
    expect((await c.send('RNFR file.txt')).code).toBe(350);
    expect((await c.send('RNTO renamed.txt')).code).toBe(250);
    expect((await c.send('RNTO again.txt')).code).toBe(503);
    expect((await c.send('RNFR renamed.txt')).code).toBe(350);
    expect((await c.send('RNTO file.txt')).code).toBe(250);
    expect((await c.send(`USER ${TEST_USER}`)).code).toBe(503);
    expect((await c.send('HOST example.com')).code).toBe(503);
    c.close();
  });

  it.each([
    'PWD', 'XPWD', 'CWD /', 'CDUP', 'LIST', 'NLST', 'MLSD', 'MLST', 'RETR file.txt', 'STOR x', 'APPE x', 'STOU',
    'DELE file.txt', 'MKD d', 'RMD d', 'RNFR file.txt', 'RNTO x', 'SIZE file.txt', 'MDTM file.txt',
    'MFMT 20200101000000 file.txt', 'PASV', 'EPSV', 'PORT 127,0,0,1,200,1', 'EPRT |1|127.0.0.1|51201|',
    'TYPE I', 'MODE S', 'STRU F', 'REST 0', 'ABOR', 'ALLO 10',
  ])('%s before login → 530', async (line) => {
    const c = await secureClient(srv.port);
    expect((await c.send(line)).code).toBe(530);
    c.close();
  });

  it('commands allowed before login answer normally', async () => {
    const c = await secureClient(srv.port);
    expect((await c.send('SYST')).code).toBe(215);
    expect((await c.send('NOOP')).code).toBe(200);
    expect((await c.send('FEAT')).code).toBe(211);
    expect((await c.send('HELP')).code).toBe(214);
    expect((await c.send('STAT')).code).toBe(211);
    expect((await c.send('OPTS UTF8 ON')).code).toBe(200);
    expect((await c.send('HOST ftp.example.com')).code).toBe(220);
    c.close();
  });

  it.each([
    'RETR', 'STOR', 'APPE', 'DELE', 'MKD', 'XMKD', 'RMD', 'RNFR', 'RNTO', 'SIZE', 'MDTM', 'MFMT', 'CWD', 'TYPE', 'MODE',
    'STRU', 'REST', 'PORT', 'EPRT', 'OPTS', 'AUTH', 'PBSZ', 'PROT', 'HOST', 'USER', 'RETR ',
  ])('"%s" without its argument → 501', async (line) => {
    const c = await loggedIn(srv.port);
    expect((await c.send(line)).code).toBe(501);
    c.close();
  });

  it.each(['TYPE E', 'TYPE X', 'TYPE A T', 'TYPE L 7', 'MODE B', 'MODE C', 'STRU R', 'STRU P'])(
    'an unsupported parameter (%s) → 504',
    async (line) => {
      const c = await loggedIn(srv.port);
      expect((await c.send(line)).code).toBe(504);
      c.close();
    },
  );

  it.each(['TYPE A', 'TYPE A N', 'TYPE I', 'TYPE L 8', 'type i', 'MODE S', 'STRU F'])('a supported parameter (%s) → 200', async (line) => {
    const c = await loggedIn(srv.port);
    expect((await c.send(line)).code).toBe(200);
    c.close();
  });

  it('SYST → 215 UNIX Type: L8', async () => {
    const c = await secureClient(srv.port);
    expect((await c.send('SYST')).text).toBe('215 UNIX Type: L8');
    c.close();
  });

  it('QUIT → 221 and the server closes', async () => {
    const c = await secureClient(srv.port);
    expect((await c.send('QUIT')).code).toBe(221);
    await expect(c.read(3000)).rejects.toThrow('connection closed');
  });
});

describe('multi-line replies', () => {
  const EXPECTED_FEATURES = [
    'AUTH SSL',
    'AUTH TLS',
    'EPRT',
    'EPSV',
    'HOST',
    'MDTM',
    'MFMT',
    'MLST type*;size*;modify*;perm*;unix.mode*;',
    'PBSZ',
    'PROT',
    'REST STREAM',
    'SIZE',
    'UTF8',
  ];

  it('FEAT is RFC 959/2389 multi-line: 211-, one space-indented feature per line, 211 End', async () => {
    const c = await secureClient(srv.port);
    const { reply, raw } = await wire(c, 'FEAT');
    expect(reply.code).toBe(211);
    expect(raw.endsWith('\r\n')).toBe(true);
    const lines = raw.slice(0, -2).split('\r\n');
    expect(lines.every((l) => !l.includes('\n') && !l.includes('\r'))).toBe(true);
    expect(lines[0]).toMatch(/^211-/);
    expect(lines.at(-1)).toBe('211 End');
    const features = lines.slice(1, -1);
    for (const f of features) expect(f).toMatch(/^ [^ ]/);
    expect(features.map((f) => f.slice(1)).sort()).toEqual(EXPECTED_FEATURES);
    c.close();
  });

  it('HELP is a multi-line 214 reply naming the commands', async () => {
    const c = await secureClient(srv.port);
    const { reply, raw } = await wire(c, 'HELP');
    expect(reply.code).toBe(214);
    const lines = raw.slice(0, -2).split('\r\n');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[0]).toMatch(/^214-/);
    expect(lines.at(-1)).toMatch(/^214 /);
    // Middle lines never look like a final line.
    for (const l of lines.slice(1, -1)) expect(l).not.toMatch(/^\d{3} /);
    const verbs = lines.slice(1, -1).join(' ').split(/\s+/);
    for (const v of ['USER', 'PASS', 'AUTH', 'RETR', 'STOR', 'EPSV', 'MLSD', 'FEAT', 'QUIT']) expect(verbs).toContain(v);
    c.close();
  });

  it('STAT without argument is a multi-line 211', async () => {
    const c = await loggedIn(srv.port);
    const { reply, raw } = await wire(c, 'STAT');
    expect(reply.code).toBe(211);
    expect(raw).toMatch(/^211-[^\r\n]*\r\n( [^\r\n]*\r\n)+211 [^\r\n]*\r\n$/);
    expect(raw).toContain(`Logged in as ${TEST_USER}`);
    c.close();
  });
});

describe('every FEAT line works', () => {
  it('AUTH TLS and AUTH SSL both upgrade the control connection', async () => {
    const c = await secureClient(srv.port);
    expect(c.socket).toBeInstanceOf(tls.TLSSocket);
    c.close();

    // AUTH SSL, by hand: the raw client's upgrade() always says TLS.
    const raw = net.connect({ port: srv.port, host: '127.0.0.1' });
    const lines: string[] = [];
    const nextLine = () =>
      new Promise<string>((resolve) => {
        let text = '';
        const onData = (chunk: Buffer) => {
          text += chunk.toString();
          if (text.endsWith('\r\n')) {
            raw.off('data', onData);
            resolve(text);
          }
        };
        raw.on('data', onData);
      });
    lines.push(await nextLine());
    raw.write('AUTH SSL\r\n');
    lines.push(await nextLine());
    expect(lines).toEqual([expect.stringMatching(/^220 /), '234 AUTH SSL successful\r\n']);
    const secure = tls.connect({ socket: raw, host: '127.0.0.1', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => secure.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    secure.write(`USER ${TEST_USER}\r\n`);
    expect(await reply).toBe('331 Password required\r\n');
    secure.destroy();
  });

  it('AUTH with an unknown mechanism → 504', async () => {
    const c = await RawFtpClient.connect(srv.port);
    expect((await c.read()).code).toBe(220);
    expect((await c.send('AUTH KERBEROS')).code).toBe(504);
    expect((await c.send('AUTH TLS')).code).toBe(234);
    c.close();
  });

  it('PBSZ, PROT P and EPSV: a protected passive download', async () => {
    const c = await secureClient(srv.port);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('PBSZ 0')).text).toBe('200 PBSZ=0');
    expect((await c.send('PROT P')).code).toBe(200);
    expect((await c.send('EPSV 1')).code).toBe(229);
    expect((await c.send('EPSV 2')).code).toBe(522);
    expect((await download(c, 'file.txt')).toString()).toBe('0123456789abcdef');
    c.close();
  });

  it('EPRT: an active download to the client', async () => {
    const c = await loggedIn(srv.port);
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
    expect((await c.send(`EPRT |1|127.0.0.1|${port}|`)).code).toBe(200);
    expect((await c.send('RETR file.txt')).code).toBe(150);
    const data = tls.connect({ socket: await accepted, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
    expect((await received(data)).toString()).toBe('0123456789abcdef');
    expect((await c.read()).code).toBe(226);
    listener.close();
    c.close();
  });

  it('SIZE, MDTM and MFMT', async () => {
    const c = await loggedIn(srv.port);
    await writeFile(path.join(srv.root, 'timed.bin'), Buffer.alloc(1234, 7));
    await utimes(path.join(srv.root, 'timed.bin'), new Date(), new Date('2020-01-02T03:04:05Z'));
    expect((await c.send('SIZE timed.bin')).text).toBe('213 1234');
    expect((await c.send('MDTM timed.bin')).text).toBe('213 20200102030405');
    const mfmt = await c.send('MFMT 20210304050607 timed.bin');
    expect(mfmt.text).toBe('213 Modify=20210304050607; timed.bin');
    expect((await stat(path.join(srv.root, 'timed.bin'))).mtime.toISOString()).toBe('2021-03-04T05:06:07.000Z');
    expect((await c.send('MDTM timed.bin')).text).toBe('213 20210304050607');
    expect((await c.send('MFMT 20211304050607 timed.bin')).code).toBe(501);
    expect((await c.send('SIZE missing.bin')).code).toBe(550);
    c.close();
  });

  it('REST STREAM: a download resumes at the offset, and only the next transfer', async () => {
    const c = await loggedIn(srv.port);
    expect((await c.send('REST 10')).code).toBe(350);
    expect((await download(c, 'file.txt')).toString()).toBe('abcdef');
    expect((await download(c, 'file.txt')).toString()).toBe('0123456789abcdef');
    expect((await c.send('REST x')).code).toBe(501);
    c.close();
  });

  it('REST STREAM: an upload resumes at the offset', async () => {
    const c = await loggedIn(srv.port);
    await upload(c, 'resume.txt', 'AAAAAAAAAA');
    expect((await c.send('REST 4')).code).toBe(350);
    await upload(c, 'resume.txt', 'bbb');
    expect((await download(c, 'resume.txt')).toString()).toBe('AAAAbbb');
    c.close();
  });

  it('MLST: one space-indented fact line; OPTS MLST narrows the facts', async () => {
    const c = await loggedIn(srv.port);
    const { reply, raw } = await wire(c, 'MLST file.txt');
    expect(reply.code).toBe(250);
    const lines = raw.slice(0, -2).split('\r\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^250-/);
    expect(lines[1]).toMatch(/^ type=file;size=16;modify=\d{14};perm=[a-z]+;unix\.mode=0\d{3}; \/file\.txt$/);
    expect(lines[2]).toMatch(/^250 /);
    expect((await c.send('OPTS MLST size;type;')).code).toBe(200);
    expect((await c.send('MLST file.txt')).text.split('\n')[1]).toBe(' type=file;size=16; /file.txt');
    // RFC 3659 §7.8: FEAT marks the facts currently selected, and only those, with '*'.
    expect((await c.send('FEAT')).text.split('\n')).toContain(' MLST type*;size*;modify;perm;unix.mode;');
    c.close();
  });

  it('UTF8: OPTS UTF8 ON → 200, and UTF-8 names go through unchanged', async () => {
    const c = await loggedIn(srv.port);
    expect((await c.send('OPTS UTF8 ON')).code).toBe(200);
    expect((await c.send('OPTS UTF8 OFF')).code).toBe(504);
    const name = 'grüße 日本 🎉.txt';
    await upload(c, name, 'unicode');
    expect(await readdir(srv.root)).toContain(name);
    const data = await c.openPassive({ tls: true });
    const body = received(data);
    expect((await c.send('NLST')).code).toBe(150);
    expect((await body).toString('utf8').split('\r\n')).toContain(name);
    expect((await c.read()).code).toBe(226);
    expect((await c.send(`SIZE ${name}`)).text).toBe('213 7');
    c.close();
  });

  it('HOST before login → 220', async () => {
    const c = await secureClient(srv.port);
    expect((await c.send('HOST ftp.example.com')).code).toBe(220);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    c.close();
  });
});

describe('command line handling', () => {
  it('Telnet IAC IP / IAC DM before ABOR are ignored (idle: 225)', async () => {
    const c = await loggedIn(srv.port);
    c.writeRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
    expect((await c.read()).code).toBe(225);
    c.close();
  });

  it('ABOR with Telnet IAC during a download aborts it: 426 for the transfer, then 226 for ABOR', async () => {
    const c = await loggedIn(srv.port);
    await writeFile(path.join(srv.root, 'big.bin'), Buffer.alloc(32 * 1024 * 1024, 1));
    const data = await c.openPassive({ tls: true });
    // Read nothing: the transfer stalls on backpressure and is still running when ABOR comes.
    data.pause();
    expect((await c.send('RETR big.bin')).code).toBe(150);
    c.writeRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    data.destroy();
    expect((await c.send('NOOP')).code).toBe(200);
    c.close();
  });

  it('commands pipelined in one write are answered in order', async () => {
    const c = await loggedIn(srv.port);
    c.writeRaw('MKD pipe\r\nCWD pipe\r\nPWD\r\nSYST\r\nXYZW\r\nCDUP\r\nRMD pipe\r\nPWD\r\n');
    const replies: string[] = [];
    for (let i = 0; i < 8; i++) replies.push((await c.read()).text);
    expect(replies).toEqual([
      '257 "/pipe" created',
      '250 Directory changed to "/pipe"',
      '257 "/pipe" is the current directory',
      '215 UNIX Type: L8',
      '502 Command not implemented',
      '250 Directory changed to "/"',
      '250 Directory removed',
      '257 "/" is the current directory',
    ]);
    c.close();
  });

  it('a long pipeline (more than the queue limit) is answered completely and in order', async () => {
    const c = await loggedIn(srv.port);
    const n = 200;
    c.writeRaw(Array.from({ length: n }, (_, i) => (i % 2 ? 'NOOP\r\n' : 'SYST\r\n')).join(''));
    for (let i = 0; i < n; i++) expect((await c.read()).code).toBe(i % 2 ? 200 : 215);
    expect((await c.send('PWD')).code).toBe(257);
    c.close();
  });

  it('every non-blank line gets a reply: a leading space or a malformed verb → 502; blank lines are skipped', async () => {
    const c = await loggedIn(srv.port);
    c.writeRaw(' NOOP\r\n\r\n   \r\nRETRfile.txt\r\nRETR\tfile.txt\r\nNOOP\r\n');
    const replies: number[] = [];
    for (let i = 0; i < 4; i++) replies.push((await c.read()).code);
    expect(replies).toEqual([502, 502, 502, 200]);
    c.close();
  });

  it('lowercase and mixed-case verbs work; a bare LF ends a line too', async () => {
    const c = await secureClient(srv.port);
    expect((await c.send('syst')).code).toBe(215);
    expect((await c.send(`user ${TEST_USER}`)).code).toBe(331);
    expect((await c.send(`pAsS ${TEST_PASSWORD}`)).code).toBe(230);
    expect((await c.send('pwd')).text).toBe('257 "/" is the current directory');
    expect((await c.send('Size file.txt')).text).toBe('213 16');
    c.writeRaw('noop\n');
    expect((await c.read()).code).toBe(200);
    c.close();
  });

  it('an upload and a download give back the same bytes (SHA-256)', async () => {
    const c = await loggedIn(srv.port);
    const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) & 0xff));
    await upload(c, 'blob.bin', content);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(await download(c, 'blob.bin'))).toBe(sha(content));
    c.close();
  });
});
