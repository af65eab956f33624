/* An auth hook (AUTH_HOOK_URL) for tests: a real node:http server on a loopback port. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OnTestFinishedHandler } from 'vitest';

export interface HookRequest {
  readonly body: Record<string, unknown>;
  readonly authorization: string | undefined;
}

/** Runs a cleanup when the current test ends (the test context's onTestFinished: right for concurrent tests). */
export type Defer = (cleanup: OnTestFinishedHandler) => void;

/** What the hook does with one request: answer, or (for the slow hook) nothing until the test ends. */
export type Answer = (request: HookRequest, res: http.ServerResponse) => void;

export const json = (status: number, body: unknown): Answer => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

/** Answers as the hook of a directory with one user, `hooked`/`hook-pass`, whose answer is `account`. */
export const oneUser = (account: Record<string, unknown>): Answer => (req, res) =>
  req.body.user !== 'hooked' ? json(404, {})(req, res) : req.body.password === 'hook-pass' ? json(200, account)(req, res) : json(401, {})(req, res);

/** A real HTTP hook on a loopback port; `requests` records every request it received. */
export async function startHook(defer: Defer, answer: Answer): Promise<{ url: string; requests: HookRequest[] }> {
  const requests: HookRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>, authorization: req.headers.authorization };
      requests.push(request);
      answer(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  defer(() => server.closeAllConnections());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`, requests };
}
