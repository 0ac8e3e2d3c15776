// Bounded shutdown against a real nats-server: a connection whose broker went away (reconnecting)
// must close by the deadline, and a step that never ends must not hold up the next one.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { startNatsServerForTest } from '../test/helpers/nats-server.js';
import { closeWithin, stopInOrder } from './lifecycle.js';

t.test('closeWithin: drains a live connection; closes a reconnecting one by the deadline', async (t) => {
  const server = await startNatsServerForTest(t);
  const live = await connect({ servers: server.url });
  await closeWithin(live, 2000);
  t.ok(live.isClosed(), 'a live connection is drained and closed');

  const orphan = await connect({ servers: server.url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  orphan.subscribe('x.>');
  await server.stop();
  const started = Date.now();
  await closeWithin(orphan, 300);
  const ms = Date.now() - started;
  t.ok(orphan.isClosed(), 'closed although its broker is gone');
  t.ok(ms < 2000, `resolved by the deadline, not stuck in drain (${ms} ms)`);
  await closeWithin(orphan, 300); // closed already: returns at once
  await closeWithin(undefined, 300);
});

t.test('stopInOrder: a step that never ends is cut off and the next one still runs', async (t) => {
  const warnings: unknown[] = [];
  const errors: unknown[] = [];
  const ran: string[] = [];
  await stopInOrder(
    [
      ['stuck', () => new Promise(() => undefined)],
      ['failing', () => Promise.reject(new Error('boom'))],
      ['last', async () => void ran.push('last')],
    ],
    { warn: (o) => void warnings.push(o), error: (o) => void errors.push(o) },
    100,
  );
  t.same(ran, ['last']);
  t.match(warnings, [{ what: 'stuck', stepTimeoutMs: 100 }]);
  t.match(errors, [{ what: 'failing' }]);
});
