/*
 * Apache Commons Net FTPSClient (Java, Debian's libcommons-net-java) against the real server, in process.
 * FTPSClient never resumes the control connection's TLS session on data connections, so at the secure
 * defaults it gets 522; a users-file line with `reuse=optional` lets that one user in, nobody else.
 * Over TLS 1.3 its uploads end with user_canceled then close_notify, and Node's TLS layer does not report that
 * as a clean end: with TLS_STRICT_EOF they get 426 (nothing stored). TLS_MAX_VERSION=TLSv1.2 serves it.
 *
 * The Java program is a constant, run as a single source file (java 11+); port, login and paths reach it
 * through argv.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';

const execFileAsync = promisify(execFile);
const COMMONS_NET_JAR = '/usr/share/java/commons-net.jar';
const MISSING = 'Java and Commons Net are needed: apt-get install default-jre-headless libcommons-net-java (scripts/test-setup.sh)';

/** argv: port user password local remote [protocol]. Prints one line per step: `step reply-code ok`. */
const PROGRAM = String.raw`
import org.apache.commons.net.ftp.*;
import org.apache.commons.net.util.TrustManagerUtils;
import java.io.*;

public class RoundTrip {
  public static void main(String[] a) throws Exception {
    FTPSClient c = new FTPSClient("TLS", false);
    if (a.length > 5) c.setEnabledProtocols(new String[] { a[5] });
    c.setTrustManager(TrustManagerUtils.getAcceptAllTrustManager()); // the test server's certificate is self-signed
    c.setDefaultTimeout(10000);
    c.setDataTimeout(java.time.Duration.ofSeconds(10));
    c.connect("127.0.0.1", Integer.parseInt(a[0]));
    System.out.println("login " + c.login(a[1], a[2]));
    c.execPBSZ(0);
    c.execPROT("P");
    c.enterLocalPassiveMode();
    c.setFileType(FTP.BINARY_FILE_TYPE);
    boolean stored;
    try (InputStream in = new FileInputStream(a[3])) { stored = c.storeFile(a[4], in); }
    System.out.println("store " + c.getReplyCode() + " " + stored + " " + c.getReplyString().trim());
    String[] names = c.listNames();
    System.out.println("list " + c.getReplyCode() + " " + (names == null ? "-" : String.join("/", names)));
    ByteArrayOutputStream back = new ByteArrayOutputStream();
    boolean retrieved = c.retrieveFile(a[4], back);
    String digest = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(back.toByteArray()));
    System.out.println("retrieve " + c.getReplyCode() + " " + retrieved + " " + digest);
    c.logout();
    c.disconnect();
  }
}
`;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const EXEMPT = ['batch', 'batch-pass'] as const;
const STRICT = ['person', 'person-pass'] as const;

let work: string;
let program: string;
let srv: RunningServer;
let tls13: RunningServer;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'commons-net-'));
  try {
    await access(COMMONS_NET_JAR);
    await execFileAsync('java', ['-version'], { timeout: 20_000 });
  } catch (err) {
    throw new Error(MISSING, { cause: err });
  }
  program = path.join(work, 'RoundTrip.java');
  await writeFile(program, PROGRAM);
  const usersFile = path.join(work, 'users');
  await writeFile(
    usersFile,
    [`${EXEMPT[0]}:${bcrypt.hashSync(EXEMPT[1], 4)}:batch:rw,reuse=optional`, `${STRICT[0]}:${bcrypt.hashSync(STRICT[1], 4)}:person:rw`].join('\n'),
  );
  [srv, tls13] = await Promise.all([
    startServer({ FTP_USERS_FILE: usersFile, TLS_MAX_VERSION: 'TLSv1.2' }),
    startServer({ FTP_USERS_FILE: usersFile }),
  ]);
});
afterAll(async () => {
  await srv?.stop();
  await tls13?.stop();
  await rm(work, { recursive: true, force: true });
});

async function roundTrip(
  login: readonly [string, string],
  remote: string,
  content: Buffer,
  server = srv,
): Promise<Record<string, string[]>> {
  const local = path.join(work, remote);
  await writeFile(local, content);
  const { stdout } = await execFileAsync('java', ['-cp', COMMONS_NET_JAR, program, String(server.port), ...login, local, remote], {
    timeout: 60_000,
  });
  return Object.fromEntries(stdout.trim().split('\n').map((line) => [line.split(' ')[0]!, line.split(' ').slice(1)]));
}

describe('Apache Commons Net FTPSClient (never resumes the TLS session), TLS_MAX_VERSION=TLSv1.2', () => {
  it('uploads, lists and downloads as a user with reuse=optional', { timeout: 90_000 }, async () => {
    const content = randomBytes(500_000);

    const steps = await roundTrip(EXEMPT, 'from-java.bin', content);

    expect(steps.login).toEqual(['true']);
    expect(steps.store!.slice(0, 2), steps.store!.join(' ')).toEqual(['226', 'true']);
    expect(steps.list).toEqual(['226', 'from-java.bin']);
    expect(steps.retrieve).toEqual(['226', 'true', sha256(content)]);
    expect((await readFile(path.join(srv.root, 'batch', 'from-java.bin'))).equals(content)).toBe(true);
  });

  it('negotiates no more than TLS 1.2 although Java offers 1.3', async () => {
    const session = srv.logs.find((l) => l.user === EXEMPT[0] && typeof l.tls === 'string');
    expect(session?.tls).toBe('TLSv1.2');
  });
});

describe('Apache Commons Net FTPSClient over TLS 1.3 (TLS_MAX_VERSION default)', () => {
  it('gets 522 naming the setting as any other user, and stores nothing (TLS 1.2 ends the data handshake instead)', { timeout: 90_000 }, async () => {
    const steps = await roundTrip(STRICT, 'refused.bin', randomBytes(10_000), tls13);

    expect(steps.login).toEqual(['true']);
    expect(steps.store!.slice(0, 2)).toEqual(['522', 'false']);
    expect(steps.store!.join(' ')).toContain('TLS_REQUIRE_SESSION_REUSE');
    await expect(access(path.join(tls13.root, 'person', 'refused.bin'))).rejects.toThrow();
  });

  it('its upload is refused with 426 and the previous file stays; downloads work', { timeout: 90_000 }, async () => {
    const content = randomBytes(50_000);
    await mkdir(path.join(tls13.root, 'batch'), { recursive: true });
    await writeFile(path.join(tls13.root, 'batch', 'present.bin'), content);

    const steps = await roundTrip(EXEMPT, 'present.bin', randomBytes(20_000), tls13);

    expect(steps.store!.slice(0, 2)).toEqual(['426', 'false']);
    expect(steps.retrieve).toEqual(['226', 'true', sha256(content)]);
  });
});
