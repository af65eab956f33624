/*
 * Finding 9: `void session.start()` and `void this.pump()` had no catch, so any throw outside a command handler
 * ended the process and every client's session. Each session now runs inside a fault boundary: an unexpected
 * error is logged once with the session id, answered 421, and ends that session only.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ControlChannel } from '../../src/session/control-channel.js';
import { TlsContextFactory } from '../../src/tls/session-contexts.js';
import { afterThisTest } from '../support/fixtures.js';
import { loggedIn, RawFtpClient } from '../support/raw-client.js';
import { withServer, type RunningServer } from '../support/server.js';

afterEach(() => vi.restoreAllMocks());

const failures = (srv: RunningServer) => srv.logs.filter((l) => l.msg === 'session failed unexpectedly, closing it');

async function stillServes(srv: RunningServer, survivor: RawFtpClient): Promise<void> {
  expect((await survivor.send('NOOP')).code).toBe(200);
  const fresh = await loggedIn(srv.port);
  expect((await fresh.send('PWD')).code).toBe(257);
  fresh.close();
}

describe('one fault, one session', () => {
  it('a throw during the TLS upgrade after AUTH ends that session only', async () => {
    await withServer({}, async (srv) => {
      const survivor = await loggedIn(srv.port);
      afterThisTest(() => survivor.close());
      vi.spyOn(TlsContextFactory.prototype, 'forSession').mockImplementationOnce(() => {
        throw new Error('injected fault');
      });
      const victim = await RawFtpClient.connect(srv.port);
      afterThisTest(() => victim.close());
      expect((await victim.read()).code).toBe(220);
      victim.writeRaw('AUTH TLS\r\n');
      expect((await victim.read()).code).toBe(234);
      // The server could not start TLS: it says so in plain text and closes.
      expect((await victim.read()).code).toBe(421);
      await expect(victim.read(2000)).rejects.toThrow(/closed/);
      expect(failures(srv)).toEqual([expect.objectContaining({ level: 50, session: expect.any(String) })]);
      await stillServes(srv, survivor);
    });
  });

  it('a throw in the command loop ends that session only', async () => {
    await withServer({}, async (srv) => {
      const survivor = await loggedIn(srv.port);
      afterThisTest(() => survivor.close());
      const victim = await loggedIn(srv.port);
      afterThisTest(() => victim.close());
      vi.spyOn(ControlChannel.prototype, 'drained').mockRejectedValueOnce(new Error('injected fault'));
      expect((await victim.send('NOOP')).code).toBe(421);
      await expect(victim.read(2000)).rejects.toThrow(/closed/);
      expect(failures(srv)).toHaveLength(1);
      await stillServes(srv, survivor);
    });
  });
});
