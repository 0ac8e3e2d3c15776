import t from 'tap';
import { ExecError } from './errors.js';
import { netnsArgv, run, tryRun } from './exec.js';

t.test('exec: a failure carries command, exit code and stderr but never stdin nor stdout', async (t) => {
  const secret = 'cHJpdmF0ZS1rZXktbWF0ZXJpYWwtbmV2ZXItbG9nZ2Vk';
  const err = await run('sh', ['-c', 'cat; echo "it broke" >&2; exit 3'], { input: secret }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof ExecError);
  const e = err as ExecError;
  t.equal(e.code, 'SYS_EXEC_FAILED');
  t.equal(e.exitCode, 3);
  t.equal(e.stderr, 'it broke');
  t.match(e.command, /^sh -c /);
  t.notMatch(`${e.message} ${JSON.stringify(e)}`, secret, 'stdin (echoed on stdout) is nowhere in the error');
  await t.rejects(run('false', [], { errorCode: 'WG_APPLY_FAILED' }), { code: 'WG_APPLY_FAILED' });
});

t.test('exec: output, stdin, missing programs, timeouts and netns argv', async (t) => {
  t.same(await tryRun('sh', ['-c', 'read x; echo "got $x"; exit 4'], { input: 'hello\n' }), { exitCode: 4, stdout: 'got hello\n', stderr: '' });
  await t.rejects(run('ncbnet-no-such-program', []), { code: 'SYS_EXEC_FAILED', message: /could not run/ });
  const started = Date.now();
  await t.rejects(run('sleep', ['5'], { timeoutMs: 100 }), { code: 'SYS_EXEC_TIMEOUT' });
  t.ok(Date.now() - started < 2_000, 'killed at the deadline');
  t.same(netnsArgv('wg', ['show'], 'ns-1'), ['ip', 'netns', 'exec', 'ns-1', 'wg', 'show']);
  t.same(netnsArgv('wg', ['show']), ['wg', 'show']);
  t.throws(() => netnsArgv('wg', [], '../etc'), { code: 'SYS_BAD_NETNS' });
  t.equal((await run('sh', ['-c', 'echo $NCBNET_X'], { env: { NCBNET_X: 'y' } })).stdout, 'y\n');
});
