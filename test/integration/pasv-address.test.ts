import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/**
 * The 227 reply a client connecting from `from` gets. Plain-text login (FTPS_REQUIRE_TLS=false): the address
 * choice does not depend on TLS, and nothing connects to the advertised address, which need not exist here.
 */
async function pasvReplyFrom(port: number, from: string): Promise<string> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
  socket.setEncoding('utf8');
  let received = '';
  const replyTo = async (line: string | undefined, code: string) => {
    if (line !== undefined) socket.write(`${line}\r\n`);
    while (!new RegExp(`^${code} .*\\r\\n`, 'm').test(received)) {
      await new Promise<void>((resolve, reject) => {
        socket.once('data', (chunk: string) => {
          received += chunk;
          resolve();
        });
        socket.once('close', () => reject(new Error(`closed; received ${JSON.stringify(received)}`)));
      });
    }
    const reply = new RegExp(`^${code} .*$`, 'm').exec(received)![0];
    received = '';
    return reply;
  };
  try {
    await replyTo(undefined, '220');
    await replyTo(`USER ${TEST_USER}`, '331');
    await replyTo(`PASS ${TEST_PASSWORD}`, '230');
    return await replyTo('PASV', '227');
  } finally {
    socket.destroy();
  }
}

describe('PASV address per client network', () => {
  it('sends each client the address of its network, and PASV_ADDRESS to everyone else', async () => {
    server = await startServer({
      FTPS_REQUIRE_TLS: 'false',
      PASV_ADDRESS: '192.0.2.10',
      PASV_ADDRESS_OVERRIDES: '127.0.0.2/32=198.51.100.7;127.0.0.0/30=198.51.100.8',
    });
    expect(await pasvReplyFrom(server.port, '127.0.0.2')).toMatch(/\(198,51,100,7,\d+,\d+\)/);
    expect(await pasvReplyFrom(server.port, '127.0.0.3')).toMatch(/\(198,51,100,8,\d+,\d+\)/);
    expect(await pasvReplyFrom(server.port, '127.0.0.5')).toMatch(/\(192,0,2,10,\d+,\d+\)/);
  });

  it('falls back to the control connection address when PASV_ADDRESS is unset', async () => {
    server = await startServer({ FTPS_REQUIRE_TLS: 'false', PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=10.0.0.5' });
    expect(await pasvReplyFrom(server.port, '127.0.0.1')).toMatch(/\(127,0,0,1,\d+,\d+\)/);
  });

  it('resolves a host name in PASV_ADDRESS', async () => {
    server = await startServer({ FTPS_REQUIRE_TLS: 'false', PASV_ADDRESS: 'localhost' });
    expect(await pasvReplyFrom(server.port, '127.0.0.1')).toMatch(/\(127,0,0,1,\d+,\d+\)/);
    expect(server.logs).toContainEqual(expect.objectContaining({ msg: 'PASV_ADDRESS resolved', host: 'localhost', address: '127.0.0.1' }));
  });
});
