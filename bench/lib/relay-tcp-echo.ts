/**
 * TCP request/response round trips for the tunnel figure of `bench/relay.ts`, run inside network
 * namespaces (`ip netns exec NS node --import tsx bench/lib/relay-tcp-echo.ts …`):
 *
 * - `server PORT`: echoes every byte back on each connection; prints `listening`.
 * - `client N BYTES WARMUP HOST:PORT…`: one connection per target (Nagle off); `WARMUP` then `N`
 *   rounds, each sending `BYTES` to every target in turn and waiting for all of them back; prints
 *   `{"HOST:PORT": [ms, …], …}` as JSON. Alternating the targets in each round spreads machine
 *   noise over them alike.
 */
import { createConnection, createServer, type Socket } from 'node:net';

function serve(port: number): void {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  server.listen(port, '0.0.0.0', () => process.stdout.write('listening\n'));
  const stop = (): void => void server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Bounded: a server left behind ends by itself.
  setTimeout(() => process.exit(0), 15 * 60_000).unref();
}

/** A connection with a "send `bytes`, resolve when `bytes` came back" call. */
async function open(target: string): Promise<{ rtt: (data: Buffer) => Promise<number>; close: () => void }> {
  const [host, port] = target.split(':');
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = createConnection({ host: host as string, port: Number(port) }, () => resolve(s));
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  let want = 0;
  let done: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    want -= chunk.length;
    if (want <= 0 && done) {
      const d = done;
      done = undefined;
      d();
    }
  });
  return {
    rtt: (data) =>
      new Promise((resolve) => {
        want = data.length;
        const t0 = performance.now();
        done = () => resolve(performance.now() - t0);
        socket.write(data);
      }),
    close: () => socket.destroy(),
  };
}

async function client(n: number, bytes: number, warmup: number, targets: string[]): Promise<void> {
  const conns = await Promise.all(targets.map(open));
  const data = Buffer.alloc(bytes, 0x61);
  const out: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t, [] as number[]]));
  for (let i = 0; i < warmup + n; i++) {
    for (const [j, conn] of conns.entries()) {
      const ms = await conn.rtt(data);
      if (i >= warmup) out[targets[j] as string]?.push(ms);
    }
  }
  for (const c of conns) c.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') serve(Number(args[0]));
else if (mode === 'client') await client(Number(args[0]), Number(args[1]), Number(args[2]), args.slice(3));
else throw new Error('usage: relay-tcp-echo.ts server PORT | client N BYTES WARMUP HOST:PORT…');
