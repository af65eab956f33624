import type net from 'node:net';

/**
 * Reads from the start of `socket` until `decide` returns a result, then gives back the bytes it did not
 * consume with unshift(), on a paused socket: a tls.TLSSocket created on it afterwards feeds them to OpenSSL
 * (Node reads socket.readableLength when it wraps), and a 'data' listener gets them after resume().
 * `decide` may throw to reject; a close or the timeout reject with `failure(reason, probe)`, probe meaning closed
 * without a byte (a port probe such as a TCP health check).
 */
export function readStart<T>(
  socket: net.Socket,
  /** What is awaited, for the errors: "PROXY header". */
  what: string,
  timeoutMs: number,
  decide: (buf: Buffer) => { readonly result: T; readonly consumed: number } | undefined,
  failure: (reason: string, probe: boolean) => Error,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      outcome();
    };
    const onData = (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      let decision: ReturnType<typeof decide>;
      try {
        decision = decide(received);
      } catch (err) {
        finish(() => reject(err));
        return;
      }
      if (!decision) return;
      // Paused first: unshift() on a flowing socket without a listener would emit the bytes into the void.
      socket.pause();
      finish(() => {
        if (decision.consumed < received.length) socket.unshift(received.subarray(decision.consumed));
        resolve(decision.result);
      });
    };
    const onClose = () => finish(() => reject(failure(`connection closed before its ${what}`, received.length === 0)));
    const timer = setTimeout(() => finish(() => reject(failure(`no ${what} within ${timeoutMs} ms`, false))), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    // A socket accepted paused (pauseOnConnect: passive listeners) must be resumed explicitly to be read.
    socket.resume();
  });
}
