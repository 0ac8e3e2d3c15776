/**
 * `make demo`: a hub and three member countries on one machine, each in its own network
 * namespace, joined through a bridge in the hub's namespace (the "internet" of the demo). Everything
 * is real: `ncbnet hub run` with its nats-server, WireGuard tunnels (wireguard-go here), nftables,
 * enrollment through the operator CLI and `ncbnet-agent enroll` exactly as documented, messages
 * sent with `ncbnet-agent send` and read with `ncbnet-agent inbox`.
 *
 * Runs until Ctrl-C, then removes every namespace, interface, process and file it made.
 * `DEMO_ONESHOT=1` runs the scenario and exits 0 only when every expected message arrived; the last
 * line is a JSON summary. `DEMO_COUNTRIES=FR,DE,BR` picks the countries (the first one sends).
 * Traffic stays inside the namespaces this script creates.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HUB_CLI = join(ROOT, 'dist/hub/cli/main.js');
const AGENT_CLI = join(ROOT, 'dist/node-agent/cli/main.js');
const ONESHOT = process.env.DEMO_ONESHOT === '1';
const COUNTRIES = (process.env.DEMO_COUNTRIES ?? 'FR,DE,BR').split(',').map((c) => c.trim().toUpperCase());
const NAMES: Record<string, string> = { FR: 'France', DE: 'Germany', BR: 'Brazil', JP: 'Japan', KE: 'Kenya', IT: 'Italy', US: 'United States', IN: 'India' };
const HUB_UNDERLAY = '10.200.0.1';

const id = randomBytes(2).toString('hex');
const ns = (name: string) => `ncbdemo-${id}-${name.toLowerCase()}`;
const ifname = (name: string) => `nd${id}${name.toLowerCase()}`.slice(0, 15);
const created: { namespaces: string[]; processes: ChildProcess[]; dir: string } = { namespaces: [], processes: [], dir: '' };
let step = 0;
const STEPS = 9;
const say = (text: string) => console.log(`[${++step}/${STEPS}] ${text}`);
const info = (text: string) => console.log(`      ${text}`);

function sh(argv: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd as string, args, { encoding: 'utf8', input: opts.input });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Runs a CLI inside a namespace and parses its `--json` output. */
function cliJson<T>(namespace: string, cli: string, args: string[]): T {
  const out = sh(['ip', 'netns', 'exec', namespace, process.execPath, cli, ...args, '--json']);
  return JSON.parse(out) as T;
}

async function waitFile(path: string, what: string, ms = 60_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(200);
  }
}

function startDaemon(namespace: string, argv: string[], logPath: string): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  created.processes.push(child);
  const chunks: string[] = [];
  const keep = (b: Buffer) => chunks.push(b.toString('utf8'));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => void writeFile(logPath, chunks.join('')).catch(() => undefined));
  const flush = setInterval(() => void writeFile(logPath, chunks.join('')).catch(() => undefined), 2000);
  flush.unref();
  return child;
}

async function cleanup(): Promise<void> {
  for (const child of created.processes.reverse()) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
  const deadline = Date.now() + 15_000;
  while (created.processes.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await delay(100);
  for (const namespace of created.namespaces) {
    for (const pid of sh(['ip', 'netns', 'pids', namespace], { allowFail: true }).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    sh(['ip', 'netns', 'delete', namespace], { allowFail: true });
  }
  if (created.dir) await rm(created.dir, { recursive: true, force: true });
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('make demo needs root: it creates network namespaces, WireGuard interfaces and nftables tables.');
    return 77;
  }
  created.dir = await mkdtemp(join(tmpdir(), `ncbnet-demo-${id}-`));
  const hubNs = ns('hub');
  const hubState = join(created.dir, 'hub');

  say(`network: namespace ${hubNs} with a bridge ${HUB_UNDERLAY}/24, and one namespace per country (${COUNTRIES.join(', ')})`);
  sh(['ip', 'netns', 'add', hubNs]);
  created.namespaces.push(hubNs);
  sh(['ip', 'netns', 'exec', hubNs, 'ip', 'link', 'set', 'lo', 'up']);
  const bridge = ifname('br');
  sh(['ip', 'netns', 'exec', hubNs, 'ip', 'link', 'add', bridge, 'type', 'bridge']);
  sh(['ip', 'netns', 'exec', hubNs, 'ip', 'address', 'add', `${HUB_UNDERLAY}/24`, 'dev', bridge]);
  sh(['ip', 'netns', 'exec', hubNs, 'ip', 'link', 'set', bridge, 'up']);
  COUNTRIES.forEach((cc, i) => {
    const cns = ns(cc);
    sh(['ip', 'netns', 'add', cns]);
    created.namespaces.push(cns);
    sh(['ip', 'netns', 'exec', cns, 'ip', 'link', 'set', 'lo', 'up']);
    const [a, b] = [ifname(`h${cc}`), ifname(`c${cc}`)];
    sh(['ip', 'link', 'add', a, 'netns', hubNs, 'type', 'veth', 'peer', 'name', b, 'netns', cns]);
    sh(['ip', 'netns', 'exec', hubNs, 'ip', 'link', 'set', a, 'master', bridge]);
    sh(['ip', 'netns', 'exec', hubNs, 'ip', 'link', 'set', a, 'up']);
    sh(['ip', 'netns', 'exec', cns, 'ip', 'address', 'add', `10.200.0.${10 + i}/24`, 'dev', b]);
    sh(['ip', 'netns', 'exec', cns, 'ip', 'link', 'set', b, 'up']);
  });

  say('hub init: root CA, hub CA, hub and operator certificates');
  const init = JSON.parse(sh([process.execPath, HUB_CLI, 'hub', 'init', '--state', hubState, '--san', HUB_UNDERLAY, '--san', '10.77.0.1', '--san', '127.0.0.1', '--san', 'localhost', '--json'])) as { rootFingerprint: string };
  info(`root fingerprint ${init.rootFingerprint}`);
  const hubConfig = join(created.dir, 'hub.json');
  await writeFile(
    hubConfig,
    JSON.stringify({
      api: { host: '0.0.0.0', port: 8443 },
      broker: { port: 4222, monitorPort: 8222 },
      wireguard: { enabled: true, interface: ifname('hub'), listenPort: 51820, endpoint: `${HUB_UNDERLAY}:51820` },
      metrics: { host: '127.0.0.1', port: 9464 },
      probes: { intervalMs: 5000, timeoutMs: 2000 },
    }),
  );

  say('hub run: nats-server (mTLS, JetStream), registry, enrollment API, router, WireGuard, nftables');
  startDaemon(hubNs, [HUB_CLI, 'hub', 'run', '--state', hubState, '--config', hubConfig], join(created.dir, 'hub.log'));
  const endpoints = JSON.parse(await waitFile(join(hubState, 'run', 'endpoints.json'), 'the hub to start')) as { apiUrl: string; natsUrl: string };
  info(`API ${endpoints.apiUrl.replace('127.0.0.1', HUB_UNDERLAY)}, broker ${endpoints.natsUrl} (logs: ${join(created.dir, 'hub.log')})`);

  say('operator: ncbnet country add + ncbnet token create, for each country');
  const tokens = new Map<string, string>();
  for (const cc of COUNTRIES) {
    cliJson(hubNs, HUB_CLI, ['country', 'add', cc, '--name', NAMES[cc] ?? cc, '--state', hubState]);
    tokens.set(cc, cliJson<{ token: string }>(hubNs, HUB_CLI, ['token', 'create', cc, '--ttl', '15m', '--state', hubState]).token);
    info(`${cc}: pending, token issued (shown once)`);
  }

  say('each NCB: ncbnet-agent enroll (keys made locally, hub pinned from the token)');
  const states = new Map<string, string>();
  for (const cc of COUNTRIES) {
    const state = join(created.dir, cc.toLowerCase());
    await mkdir(state, { recursive: true, mode: 0o700 });
    states.set(cc, state);
    const r = cliJson<{ overlayAddress: string; serial: string }>(ns(cc), AGENT_CLI, ['enroll', '--hub', `https://${HUB_UNDERLAY}:8443`, '--token', tokens.get(cc) as string, '--state', state, '--country', cc]);
    info(`${cc}: enrolled, overlay ${r.overlayAddress}, certificate ${r.serial.slice(0, 12)}…`);
  }

  say('each NCB: ncbnet-agent run (tunnel, firewall, relay, local API on 127.0.0.1:8787)');
  for (const cc of COUNTRIES) {
    const state = states.get(cc) as string;
    const config = join(state, 'agent.json');
    await writeFile(config, JSON.stringify({ tunnel: { interface: ifname(`w${cc}`) }, localApi: { port: 8787 }, heartbeatIntervalMs: 2000 }));
    startDaemon(ns(cc), [AGENT_CLI, 'run', '--state', state, '--config', config], join(created.dir, `${cc.toLowerCase()}.log`));
  }
  for (const cc of COUNTRIES) {
    await waitFile(join(states.get(cc) as string, 'run', 'endpoints.json'), `${cc}'s agent to start`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const s = spawnSync('ip', ['netns', 'exec', ns(cc), process.execPath, AGENT_CLI, 'status', '--state', states.get(cc) as string, '--json'], { encoding: 'utf8' });
      if (s.status === 0 && /"ready":\s*true/.test(s.stdout)) break;
      if (Date.now() > deadline) throw new Error(`${cc}'s agent did not become ready: ${s.stdout}${s.stderr}`);
      await delay(500);
    }
    info(`${cc}: tunnel up, connected to the broker over it`);
  }

  const [sender, ...others] = COUNTRIES as [string, ...string[]];
  const direct = others[0] as string;
  say(`${sender} sends a red notice to ${direct}, and a message to all countries`);
  const sent = [
    cliJson<{ id: string }>(ns(sender), AGENT_CLI, ['send', '--state', states.get(sender) as string, '--to', direct, '--kind', 'notice', '--notice-colour', 'red', '--priority', 'urgent', '--subject', 'Red notice: wanted person', '--body', 'Arrest with a view to extradition.']),
    cliJson<{ id: string }>(ns(sender), AGENT_CLI, ['send', '--state', states.get(sender) as string, '--to', '*', '--kind', 'message', '--subject', 'Network test', '--body', `Hello from ${sender}`]),
  ];
  info(`sent ${sent.map((s) => s.id).join(', ')}`);
  const expected = new Map<string, number>(others.map((cc) => [cc, cc === direct ? 2 : 1]));

  say('who received what (ncbnet-agent inbox in each NCB)');
  const received = new Map<string, { id: string; from: string; subject: string }[]>();
  const deadline = Date.now() + 60_000;
  for (const cc of others) {
    for (;;) {
      const items = cliJson<{ id: string; envelope: { from: string; subject?: string } }[]>(ns(cc), AGENT_CLI, ['inbox', '--state', states.get(cc) as string]);
      received.set(cc, items.map((i) => ({ id: i.id, from: i.envelope.from, subject: i.envelope.subject ?? '' })));
      if (items.length >= (expected.get(cc) ?? 0) || Date.now() > deadline) break;
      await delay(500);
    }
  }
  for (const cc of others) for (const m of received.get(cc) ?? []) info(`${cc} ← ${m.from}: ${m.subject} (${m.id})`);
  // Receipts travel back to the sender: what FR's agent knows about its red notice.
  const receiptDeadline = Date.now() + 20_000;
  let receipts: Record<string, { state: string }> = {};
  while (Date.now() < receiptDeadline) {
    receipts = cliJson<{ recipients?: Record<string, { state: string }> }>(ns(sender), AGENT_CLI, ['status', sent[0]?.id as string, '--state', states.get(sender) as string]).recipients ?? {};
    if (receipts[direct]) break;
    await delay(500);
  }
  info(`${sender}'s receipts for the red notice: ${Object.entries(receipts).map(([cc, r]) => `${cc} ${r.state}`).join(', ') || 'none yet'}`);

  say('status of every country, as the hub sees it (ncbnet status), and where Prometheus scrapes it');
  console.log(sh(['ip', 'netns', 'exec', hubNs, process.execPath, HUB_CLI, 'status', '--state', hubState]).trimEnd());
  // One scrape, as Prometheus would make it (from inside the hub's namespace, where it listens).
  const scrape = sh(['ip', 'netns', 'exec', hubNs, process.execPath, '-e', "fetch('http://127.0.0.1:9464/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"], { allowFail: true });
  for (const line of scrape.split('\n').filter((l) => l.startsWith('ncbnet_country_connected{'))) info(line);
  info(`hub metrics: ip netns exec ${hubNs} curl -s http://127.0.0.1:9464/metrics`);
  for (const cc of COUNTRIES) info(`${cc} agent metrics: ip netns exec ${ns(cc)} curl -s http://127.0.0.1:9465/metrics`);
  info('alert rules and a dashboard for them: deploy/prometheus/, deploy/grafana/');

  const delivered = [...received.values()].reduce((n, l) => n + l.length, 0);
  const wanted = [...expected.values()].reduce((n, c) => n + c, 0);
  const summary = { countries: COUNTRIES.length, sent: sent.length, delivered, lost: Math.max(0, wanted - delivered) };
  if (!ONESHOT) {
    console.log('\nThe network keeps running. Try, for example:');
    console.log(`  ip netns exec ${ns(sender)} node ${AGENT_CLI} send --state ${states.get(sender) as string} --to ${direct} --kind message --body hi`);
    console.log(`  ip netns exec ${ns(direct)} node ${AGENT_CLI} inbox --state ${states.get(direct) as string}`);
    console.log('Ctrl-C removes everything.');
    await new Promise<void>((resolve) => {
      // Kept through the cleanup: a second Ctrl-C, or the SIGTERM a whole process group gets
      // (`timeout make demo`), must not kill the demo halfway and leave namespaces behind.
      let isStopping = false;
      const onSignal = (): void => {
        if (isStopping) console.log('removing everything; one moment');
        isStopping = true;
        resolve();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
  }
  console.log(JSON.stringify(summary));
  return summary.lost === 0 && delivered === wanted ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  // The logs go with the rest of the demo's files; show their ends first.
  for (const name of ['hub', ...COUNTRIES.map((c) => c.toLowerCase())]) {
    const text = await readFile(join(created.dir, `${name}.log`), 'utf8').catch(() => '');
    if (text) console.error(`--- last lines of ${name}.log ---\n${text.trimEnd().split('\n').slice(-15).join('\n')}`);
  }
} finally {
  await cleanup();
}
process.exit(code);
