import t from 'tap';
import { countryPermissions, MAX_PAYLOAD_LIMIT_BYTES, renderBrokerConfig, type BrokerConfigInput } from './config-render.js';
import { BROKER_BAD_CONFIG, BrokerConfigError } from './errors.js';

function input(over: Partial<BrokerConfigInput> = {}): BrokerConfigInput {
  return {
    serverName: 'hub-1',
    host: '127.0.0.1',
    port: 4222,
    monitorPort: 8222,
    portsFileDir: '/var/lib/ncbnet/broker',
    jetstream: { storeDir: '/var/lib/ncbnet/jetstream', maxMemoryBytes: 256 * 1024 * 1024, maxFileBytes: 10 * 1024 * 1024 * 1024 },
    tls: { certFile: '/var/lib/ncbnet/hub/hub.crt', keyFile: '/var/lib/ncbnet/hub/hub.key', caFile: '/var/lib/ncbnet/pki/root.crt' },
    hubUser: 'CN=hub-1,OU=hub,O=ncbnet',
    countries: ['FR', 'DE'],
    maxPayloadBytes: 1024 * 1024,
    ...over,
  };
}

/** The problems a bad input gives (BROKER_BAD_CONFIG); throws when it renders. */
function problemsOf(over: Partial<BrokerConfigInput>): readonly string[] {
  try {
    renderBrokerConfig(input(over));
  } catch (err) {
    if (err instanceof BrokerConfigError && err.code === BROKER_BAD_CONFIG) return err.problems;
    throw err;
  }
  throw new Error('rendered a bad input');
}

t.test('broker config: renders listeners, JetStream, TLS with verify_and_map and loopback monitoring', async (t) => {
  const conf = renderBrokerConfig(input());
  t.match(conf, /^server_name: "hub-1"$/m);
  t.match(conf, /^host: "127\.0\.0\.1"$/m);
  t.match(conf, /^port: 4222$/m);
  t.match(conf, /^http: "127\.0\.0\.1:8222"$/m);
  t.match(conf, /^ports_file_dir: "\/var\/lib\/ncbnet\/broker"$/m);
  t.match(conf, /^max_payload: 1048576$/m);
  t.match(conf, /store_dir: "\/var\/lib\/ncbnet\/jetstream"\n {2}max_memory_store: 268435456\n {2}max_file_store: 10737418240/);
  t.match(conf, /cert_file: "\/var\/lib\/ncbnet\/hub\/hub\.crt"\n {2}key_file: "\/var\/lib\/ncbnet\/hub\/hub\.key"\n {2}ca_file: "\/var\/lib\/ncbnet\/pki\/root\.crt"/);
  t.match(conf, /^ {2}verify_and_map: true$/m);
  t.notMatch(conf, /pinned_certs|allow_responses/, 'off unless asked for');
  t.match(conf, /^ {4}\{ user: "CN=hub-1,OU=hub,O=ncbnet" \}$/m, 'hub user without restrictions');
});

t.test('broker config: random ports render as -1, monitoring stays on loopback', async (t) => {
  const conf = renderBrokerConfig(input({ port: 0, monitorPort: 0, host: '0.0.0.0' }));
  t.match(conf, /^port: -1$/m);
  t.match(conf, /^http: "127\.0\.0\.1:-1"$/m);
  t.match(conf, /^host: "0\.0\.0\.0"$/m);
});

t.test('broker config: each country gets exactly its own subjects, sorted and deterministic', async (t) => {
  const conf = renderBrokerConfig(input({ countries: ['FR', 'DE'] }));
  t.equal(conf, renderBrokerConfig(input({ countries: ['DE', 'FR'] })), 'order of countries does not matter');
  t.ok(conf.indexOf('CN=DE,OU=ncb,O=ncbnet') < conf.indexOf('CN=FR,OU=ncb,O=ncbnet'), 'sorted');
  const fr = countryPermissions('FR');
  t.same(fr.publish, [
    'ncb.submit.FR',
    'ncb.heartbeat.FR',
    'ncb.probe.FR',
    'ncb.query.>',
    '$JS.API.CONSUMER.INFO.DELIVER.deliver-FR',
    '$JS.API.CONSUMER.MSG.NEXT.DELIVER.deliver-FR',
    '$JS.ACK.DELIVER.deliver-FR.>',
  ]);
  t.same(fr.subscribe, ['_INBOX_FR.>', 'ncb.event.FR']);
  const frBlock = /\{ user: "CN=FR,OU=ncb,O=ncbnet", permissions: \{\n(.*)\n(.*)\n {4}\} \}/.exec(conf);
  t.ok(frBlock, 'FR user block');
  t.equal(frBlock?.[1]?.trim(), `publish: { allow: ${JSON.stringify(fr.publish).replace(/,/g, ', ')} }`);
  t.equal(frBlock?.[2]?.trim(), `subscribe: { allow: ${JSON.stringify(fr.subscribe).replace(/,/g, ', ')} }`);
  const frLines = conf.split('\n').filter((l) => l.includes('FR'));
  t.notOk(frLines.some((l) => /[._=-]DE\b/.test(l)), 'no FR line names DE');
  t.notOk(/\$JS\.API\.>|"\*"|">"/.test(conf), 'no wildcard grants to countries');
  t.notOk(conf.includes('deny'), 'allow lists only');
});

t.test('broker config: no countries leaves the hub user alone', async (t) => {
  const conf = renderBrokerConfig(input({ countries: [] }));
  t.match(conf, /users: \[\n {4}\{ user: "CN=hub-1,OU=hub,O=ncbnet" \}\n {2}\]/);
});

t.test('broker config: pinned_certs are validated, sorted and deduplicated', async (t) => {
  const a = 'a'.repeat(64);
  const b = '0123456789abcdef'.repeat(4);
  t.match(renderBrokerConfig(input({ pinnedCerts: [a, b, a] })), `  pinned_certs: ["${b}", "${a}"]\n`);
  t.match(problemsOf({ pinnedCerts: [] }), [/^pinnedCerts: must not be empty/]);
  t.match(problemsOf({ pinnedCerts: ['A'.repeat(64), 'abc'] }), [/^pinnedCerts\[0\]: not a lower-case hex SHA-256/, /^pinnedCerts\[1\]/]);
});

t.test('broker config: allow_responses renders as a bounded map when asked for', async (t) => {
  const conf = renderBrokerConfig(input({ countries: ['FR'], allowResponses: { maxMsgs: 1, expiresMs: 60_000 } }));
  t.match(conf, /allow_responses: \{ max: 1, expires: "60000ms" \}/);
  t.match(problemsOf({ allowResponses: { maxMsgs: 0, expiresMs: 0 } }), [/^allowResponses\.maxMsgs/, /^allowResponses\.expiresMs/]);
});

t.test('broker config: refuses quotes, backslashes, newlines and control characters in every string', async (t) => {
  const bad = ['a"b', 'a\\b', 'a\nb', 'a\rb', 'a\u0000b', 'a\u007fb'];
  for (const s of bad) {
    const problems = problemsOf({
      serverName: s,
      host: s,
      portsFileDir: `/x/${s}`,
      jetstream: { storeDir: `/x/${s}`, maxMemoryBytes: 1, maxFileBytes: 1 },
      tls: { certFile: `/x/${s}`, keyFile: `/x/${s}`, caFile: `/x/${s}` },
      hubUser: `CN=${s},OU=hub,O=ncbnet`,
    });
    for (const path of ['serverName', 'host', 'portsFileDir', 'jetstream.storeDir', 'tls.certFile', 'tls.keyFile', 'tls.caFile', 'hubUser']) {
      t.ok(
        problems.some((p) => p.startsWith(`${path}: must not contain quotes`)),
        `${path} refuses ${JSON.stringify(s)}`,
      );
    }
  }
});

t.test('broker config: reports every problem at once with its path and value', async (t) => {
  const problems = problemsOf({
    serverName: 'hub one',
    host: 'not a host',
    port: 70000,
    monitorPort: -1,
    portsFileDir: 'relative/dir',
    jetstream: { storeDir: '', maxMemoryBytes: 0, maxFileBytes: 1.5 },
    hubUser: 'CN=FR,OU=ncb,O=ncbnet',
    countries: ['FR', 'fr', 'ZZ', 'FR'],
    maxPayloadBytes: MAX_PAYLOAD_LIMIT_BYTES + 1,
  });
  t.same(problems, [
    'serverName: letters, digits, ".", "_", "-", at most 64 (got "hub one")',
    'host: not an IP address or host name (got "not a host")',
    'port: must be an integer from 0 to 65535 (got 70000)',
    'monitorPort: must be an integer from 0 to 65535 (got -1)',
    'portsFileDir: must be an absolute path (got "relative/dir")',
    'jetstream.storeDir: must be a non-empty string (got "")',
    'jetstream.maxMemoryBytes: must be an integer from 1 to 9007199254740991 (got 0)',
    'jetstream.maxFileBytes: must be an integer from 1 to 9007199254740991 (got 1.5)',
    'hubUser: must be a hub DN like "CN=hub-1,OU=hub,O=ncbnet" (got "CN=FR,OU=ncb,O=ncbnet")',
    'countries[1]: not an ISO 3166-1 alpha-2 code in upper case (got "fr")',
    'countries[2]: not an ISO 3166-1 alpha-2 code in upper case (got "ZZ")',
    'countries[3]: duplicate (got "FR")',
    `maxPayloadBytes: must be an integer from 1 to ${MAX_PAYLOAD_LIMIT_BYTES} (got ${MAX_PAYLOAD_LIMIT_BYTES + 1})`,
  ]);
  t.throws(() => renderBrokerConfig(input({ countries: ['XX'] })), { code: BROKER_BAD_CONFIG, message: /countries\[0\]/ });
});

t.test('broker config: accepts a host name and an IPv6 listener', async (t) => {
  t.match(renderBrokerConfig(input({ host: 'hub-1.ncbnet.example' })), /^host: "hub-1\.ncbnet\.example"$/m);
  t.match(renderBrokerConfig(input({ host: '::1' })), /^host: "::1"$/m);
});

t.test('broker config: B2B grants — owner subscribes and answers its own database, allowed countries publish, nobody else', async (t) => {
  const b2b = [{ owner: 'FR', db: 'vehicles', allow: ['DE'] }];
  const conf = renderBrokerConfig(input({ countries: ['FR', 'DE', 'IT'], b2b }));
  const fr = countryPermissions('FR', b2b);
  const de = countryPermissions('DE', b2b);
  const it = countryPermissions('IT', b2b);
  t.same(fr.subscribe, ['_INBOX_FR.>', 'ncb.event.FR', 'ncb.b2b.FR.vehicles'], 'the owner serves its database');
  t.notOk(fr.publish.some((s) => s.startsWith('ncb.b2b.')), 'the owner does not query itself over the network');
  t.ok(de.publish.includes('ncb.b2b.FR.vehicles'), 'DE may ask');
  t.notOk(de.subscribe.some((s) => s.startsWith('ncb.b2b.')), 'DE cannot listen to the requests');
  t.notOk([...it.publish, ...it.subscribe].some((s) => s.includes('b2b')), 'IT has nothing of it');
  const blocks = conf.split('{ user: ').slice(1);
  const block = (cc: string) => blocks.find((b) => b.startsWith(`"CN=${cc},`)) ?? '';
  t.match(block('FR'), /allow_responses: \{ max: 1, expires: "60000ms" \}/, 'the owner may answer into the asker\'s inbox');
  t.notMatch(block('DE'), /allow_responses/, 'an asker may not');
  t.notMatch(block('IT'), /b2b|allow_responses/);
  t.notOk(/ncb\.b2b\.[A-Z]{2}\.>|ncb\.b2b\.>|ncb\.b2b\.\*/.test(conf), 'no wildcard over databases');
  t.equal(renderBrokerConfig(input({ countries: ['FR', 'DE', 'IT'], b2b })), conf, 'deterministic');
  t.match(problemsOf({ b2b: [{ owner: 'fr', db: 'Bad.db', allow: ['X'] }] }), [/^b2b\[0\]\.owner/, /^b2b\[0\]\.db/, /^b2b\[0\]\.allow\[0\]/]);
});
