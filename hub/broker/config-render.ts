/**
 * Renders `nats-server.conf` for the hub's broker (ARCHITECTURE, "Broker (NATS)"). Pure: no I/O,
 * same input → same bytes (countries are sorted), so the supervisor can diff and reload it.
 *
 * Checked against nats-server v2.9.10 (`server/opts.go`):
 * - `tls { verify_and_map: true }` maps the client certificate to the user whose name is the
 *   subject DN in RFC 2253 order (`CN=FR,OU=ncb,O=ncbnet`, `auth.go` checkClientTLSCertSubject);
 *   `verify_and_map` also implies `verify`, so a client without a certificate fails the handshake.
 * - `pinned_certs` exists in 2.9.10: a list of lower-case hex SHA-256 of the DER
 *   SubjectPublicKeyInfo of the *leaf* (`auth.go` matchesPinnedCert). An empty list means no
 *   pinning at all (`len(ra) != 0`), which is why an empty list is refused here.
 * - `max_payload` above 8 MiB (MAX_PAYLOAD_MAX_SIZE) only draws a warning, but `nats-server -t`
 *   treats warnings as failures, so it is refused here.
 * - Strings are double-quoted; the conf lexer knows backslash escapes, and `$name` outside quotes
 *   is a variable reference. Rather than escape, every string is refused if it holds a quote,
 *   backslash or control character, and the rest is written with JSON quoting.
 */
import { isAbsolute } from 'node:path';
import { isIP } from 'node:net';
import { isCountryCode } from '../../protocol/country.js';
import { NAME_PATTERN, subjectDn } from '../../protocol/identity.js';
import { B2B_DB_PATTERN, type B2bGrant } from '../../protocol/b2b.js';
import { DELIVER_STREAM, deliverConsumer, subjects } from '../../protocol/subjects.js';
import { BrokerConfigError } from './errors.js';

/** TLS files of the broker listener; paths, never key material. */
export interface BrokerTlsInput {
  /** Hub certificate chain (leaf then intermediate), PEM. */
  certFile: string;
  /** Hub private key, PEM. */
  keyFile: string;
  /** CA bundle clients are verified against (the ncbnet root), PEM. */
  caFile: string;
}

/** JetStream limits and store. */
export interface BrokerJetStreamInput {
  /** Absolute path of the file store (inside the hub's state dir). */
  storeDir: string;
  maxMemoryBytes: number;
  maxFileBytes: number;
}

/**
 * `allow_responses` for country users: lets a country publish up to `maxMsgs` replies to the
 * reply subject of a message it received, within `expiresMs` (nats docs, "Authorization:
 * allow_responses"). Off by default: with the permissions below nothing is delivered to a country
 * that expects an answer; turn it on when hub probes or `ncb.b2b.<CC>.<db>` requests arrive.
 */
export interface BrokerAllowResponses {
  maxMsgs: number;
  expiresMs: number;
}

/** Everything {@link renderBrokerConfig} needs. */
export interface BrokerConfigInput {
  /** `server_name`: letters, digits, `.`, `_`, `-` (no spaces, which 2.9 refuses). */
  serverName: string;
  /** Client listener address (IP or host name), e.g. the overlay address `10.77.0.1`. */
  host: string;
  /** Client port; 0 renders `-1` (the server picks a free one and writes it to the ports file). */
  port: number;
  /** Monitoring port, always bound to 127.0.0.1; 0 renders `-1`. */
  monitorPort: number;
  /** Where nats-server writes `nats-server_<pid>.ports` (the supervisor's dir). */
  portsFileDir: string;
  jetstream: BrokerJetStreamInput;
  tls: BrokerTlsInput;
  /** The hub's own user: its certificate DN, e.g. `CN=hub-1,OU=hub,O=ncbnet`; full permissions. */
  hubUser: string;
  /** Active country codes; each becomes the user `CN=<CC>,OU=ncb,O=ncbnet`. */
  countries: readonly string[];
  /** `max_payload`, 1 B … 8 MiB. */
  maxPayloadBytes: number;
  /**
   * `pinned_certs`: SHA-256 (lower-case hex) of the SPKI DER of every leaf allowed to connect — the
   * hub's own certificate included. Undefined: no pinning. See {@link ./pins.ts}.
   */
  pinnedCerts?: readonly string[] | undefined;
  allowResponses?: BrokerAllowResponses | undefined;
  /**
   * B2B national databases (`protocol/b2b.ts` {@link b2bGrants}): each owner may subscribe to its
   * own `ncb.b2b.<OWNER>.<db>` and answer the requests it gets; each allowed country may publish
   * there. Nobody else may do either.
   */
  b2b?: readonly B2bGrant[] | undefined;
}

/** Subject permissions of one NATS user. */
export interface SubjectPermissions {
  publish: readonly string[];
  subscribe: readonly string[];
}

/**
 * `allow_responses` of a B2B owner when none is set for everyone: one answer per request, within
 * the asker's longest wait, so an owner can answer into the asker's inbox and nowhere else.
 */
export const B2B_OWNER_RESPONSES: BrokerAllowResponses = { maxMsgs: 1, expiresMs: 60_000 };

/** Largest `max_payload` nats-server 2.9 accepts without a warning (MAX_PAYLOAD_MAX_SIZE). */
export const MAX_PAYLOAD_LIMIT_BYTES = 8 * 1024 * 1024;

const SERVER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_NAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const PIN_PATTERN = /^[0-9a-f]{64}$/;
// Quotes, backslashes and control characters (newlines included) could end a quoted string or
// start an escape in the conf lexer; nothing ncbnet renders needs them.
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /["\\\u0000-\u001f\u007f]/;

/**
 * What country CC may do, and nothing more (ARCHITECTURE, Broker): publish its submissions,
 * heartbeats, answers to the hub's probes (`protocol/probe.ts`) and database queries; drive only its own pull consumer `deliver-CC` on DELIVER
 * (consumer info, next message, acks — what a restricted pull consumer needs on 2.9.10); receive
 * its events and replies on its own inbox prefix `_INBOX_CC` (the client sets `inboxPrefix`).
 */
export function countryPermissions(country: string, b2b: readonly B2bGrant[] = []): SubjectPermissions {
  const consumer = deliverConsumer(country);
  // B2B: publish to the databases whose policy allows this country; subscribe to its own.
  const asks = b2b.filter((g) => g.owner !== country && g.allow.includes(country)).map((g) => subjects.b2b(g.owner, g.db));
  const serves = b2b.filter((g) => g.owner === country).map((g) => subjects.b2b(g.owner, g.db));
  return {
    publish: [
      subjects.submit(country),
      subjects.heartbeat(country),
      subjects.probe(country),
      subjects.queryAll,
      // JetStream API subjects are nats-server's, not ncbnet's: $JS.API.CONSUMER.<op>.<stream>.<consumer>.
      `$JS.API.CONSUMER.INFO.${DELIVER_STREAM}.${consumer}`,
      `$JS.API.CONSUMER.MSG.NEXT.${DELIVER_STREAM}.${consumer}`,
      `$JS.ACK.${DELIVER_STREAM}.${consumer}.>`,
      ...asks,
    ],
    subscribe: [`${subjects.inboxPrefix(country)}.>`, subjects.event(country), ...serves],
  };
}

/** The hub user's DN must be a hub identity (`OU=hub`), so a country DN can never get full rights. */
function isHubDn(dn: string): boolean {
  const m = /^CN=([^,]+),OU=hub,O=ncbnet$/.exec(dn);
  return m !== null && m[1] !== undefined && NAME_PATTERN.test(m[1]) && subjectDn('hub', m[1]) === dn;
}

function got(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** Collects every problem of `input`; empty when it is valid. */
export function checkBrokerConfigInput(input: BrokerConfigInput): string[] {
  const problems: string[] = [];
  const safeString = (path: string, value: unknown): value is string => {
    if (typeof value !== 'string' || value === '') problems.push(`${path}: must be a non-empty string (got ${got(value)})`);
    else if (UNSAFE_CHARS.test(value)) problems.push(`${path}: must not contain quotes, backslashes or control characters (got ${got(value)})`);
    else return true;
    return false;
  };
  const absPath = (path: string, value: unknown): void => {
    if (safeString(path, value) && !isAbsolute(value)) problems.push(`${path}: must be an absolute path (got ${got(value)})`);
  };
  const integer = (path: string, value: unknown, min: number, max: number): void => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      problems.push(`${path}: must be an integer from ${min} to ${max} (got ${got(value)})`);
    }
  };

  if (safeString('serverName', input.serverName) && !SERVER_NAME_PATTERN.test(input.serverName)) {
    problems.push(`serverName: letters, digits, ".", "_", "-", at most 64 (got ${got(input.serverName)})`);
  }
  if (safeString('host', input.host) && isIP(input.host) === 0 && !HOST_NAME_PATTERN.test(input.host)) {
    problems.push(`host: not an IP address or host name (got ${got(input.host)})`);
  }
  integer('port', input.port, 0, 65535);
  integer('monitorPort', input.monitorPort, 0, 65535);
  absPath('portsFileDir', input.portsFileDir);
  absPath('jetstream.storeDir', input.jetstream.storeDir);
  integer('jetstream.maxMemoryBytes', input.jetstream.maxMemoryBytes, 1, Number.MAX_SAFE_INTEGER);
  integer('jetstream.maxFileBytes', input.jetstream.maxFileBytes, 1, Number.MAX_SAFE_INTEGER);
  absPath('tls.certFile', input.tls.certFile);
  absPath('tls.keyFile', input.tls.keyFile);
  absPath('tls.caFile', input.tls.caFile);
  if (safeString('hubUser', input.hubUser) && !isHubDn(input.hubUser)) {
    problems.push(`hubUser: must be a hub DN like "CN=hub-1,OU=hub,O=ncbnet" (got ${got(input.hubUser)})`);
  }
  const seen = new Set<string>();
  input.countries.forEach((cc, i) => {
    if (!isCountryCode(cc)) problems.push(`countries[${i}]: not an ISO 3166-1 alpha-2 code in upper case (got ${got(cc)})`);
    else if (seen.has(cc)) problems.push(`countries[${i}]: duplicate (got ${got(cc)})`);
    seen.add(cc);
  });
  integer('maxPayloadBytes', input.maxPayloadBytes, 1, MAX_PAYLOAD_LIMIT_BYTES);
  if (input.pinnedCerts !== undefined) {
    // An empty pinned_certs list disables pinning in nats-server; "nobody" must be said otherwise.
    if (input.pinnedCerts.length === 0) problems.push('pinnedCerts: must not be empty (an empty list disables pinning; omit it instead)');
    input.pinnedCerts.forEach((pin, i) => {
      if (typeof pin !== 'string' || !PIN_PATTERN.test(pin)) problems.push(`pinnedCerts[${i}]: not a lower-case hex SHA-256 (got ${got(pin)})`);
    });
  }
  if (input.allowResponses !== undefined) {
    integer('allowResponses.maxMsgs', input.allowResponses.maxMsgs, 1, 1000);
    integer('allowResponses.expiresMs', input.allowResponses.expiresMs, 1, 24 * 60 * 60 * 1000);
  }
  (input.b2b ?? []).forEach((g, i) => {
    if (!isCountryCode(g.owner)) problems.push(`b2b[${i}].owner: not an ISO 3166-1 alpha-2 code in upper case (got ${got(g.owner)})`);
    if (typeof g.db !== 'string' || !B2B_DB_PATTERN.test(g.db)) problems.push(`b2b[${i}].db: not a database name (got ${got(g.db)})`);
    g.allow.forEach((cc, j) => {
      if (!isCountryCode(cc)) problems.push(`b2b[${i}].allow[${j}]: not an ISO 3166-1 alpha-2 code in upper case (got ${got(cc)})`);
    });
  });
  return problems;
}

const q = (s: string): string => JSON.stringify(s);
const list = (items: readonly string[]): string => `[${items.map(q).join(', ')}]`;

/**
 * Renders the nats-server config for `input`. Throws {@link BrokerConfigError}
 * (`BROKER_BAD_CONFIG`) listing every problem when the input is invalid.
 */
export function renderBrokerConfig(input: BrokerConfigInput): string {
  const problems = checkBrokerConfigInput(input);
  if (problems.length > 0) throw new BrokerConfigError(problems);

  const countries = [...input.countries].sort();
  const lines = [
    '# Rendered by ncbnet (hub/broker/config-render.ts). Do not edit: the hub rewrites it and',
    '# reloads nats-server (SIGHUP) on every registry change.',
    `server_name: ${q(input.serverName)}`,
    `host: ${q(input.host)}`,
    `port: ${input.port === 0 ? -1 : input.port}`,
    // Monitoring has no authentication: loopback only (nats docs, "Monitoring").
    `http: ${q(`127.0.0.1:${input.monitorPort === 0 ? -1 : input.monitorPort}`)}`,
    `ports_file_dir: ${q(input.portsFileDir)}`,
    `max_payload: ${input.maxPayloadBytes}`,
    '',
    'jetstream {',
    `  store_dir: ${q(input.jetstream.storeDir)}`,
    `  max_memory_store: ${input.jetstream.maxMemoryBytes}`,
    `  max_file_store: ${input.jetstream.maxFileBytes}`,
    '}',
    '',
    'tls {',
    `  cert_file: ${q(input.tls.certFile)}`,
    `  key_file: ${q(input.tls.keyFile)}`,
    `  ca_file: ${q(input.tls.caFile)}`,
    // Requires a client certificate and makes its RFC 2253 subject DN the user name.
    '  verify_and_map: true',
  ];
  if (input.pinnedCerts !== undefined) lines.push(`  pinned_certs: ${list([...new Set(input.pinnedCerts)].sort())}`);
  lines.push('}', '', 'authorization {', '  users: [', `    { user: ${q(input.hubUser)} }`);
  for (const cc of countries) {
    const perms = countryPermissions(cc, input.b2b);
    const responses = input.allowResponses ?? (input.b2b?.some((g) => g.owner === cc) ? B2B_OWNER_RESPONSES : undefined);
    // Allow lists only: anything not listed is denied by the server.
    lines.push(
      `    { user: ${q(subjectDn('country', cc))}, permissions: {`,
      `        publish: { allow: ${list(perms.publish)} }`,
      `        subscribe: { allow: ${list(perms.subscribe)} }`,
    );
    if (responses !== undefined) {
      lines.push(`        allow_responses: { max: ${responses.maxMsgs}, expires: ${q(`${responses.expiresMs}ms`)} }`);
    }
    lines.push('    } }');
  }
  lines.push('  ]', '}');
  return `${lines.join('\n')}\n`;
}
