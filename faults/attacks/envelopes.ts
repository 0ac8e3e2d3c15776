/**
 * Attack 3: envelopes a country may not get routed, submitted straight to the real hub broker
 * with the country's own key and connection (no agent in the way): a forged `from`, another
 * country's or a foreign CA's certificate, a tampered or unsigned envelope, a certificate revoked
 * by renewal, an `expires` already passed. Each must be rejected by the router with its code on
 * `ncb.event.<CC>`, recorded as `rejected` in the hash-chained audit (read back over operator
 * mTLS, `GET /v1/admin/audit/messages/{id}`), and never stored for any recipient.
 *
 * Replays: the same submission again within SUBMIT's 2-minute duplicate window (same
 * `Nats-Msg-Id`), the same envelope under a new `Nats-Msg-Id` (DELIVER's window on `<id>.<TO>`
 * must hold it to one copy), and the same envelope pushed into DE's delivery subject a second
 * time under a new id, past both windows, where DE's real relay (node-agent/relay, attached as
 * DE) must drop it as a duplicate. A replay after the windows expire is out of reach of a quick
 * run; the inbox check is what covers it (ids are remembered 35 days).
 */
import { X509Certificate } from 'node:crypto';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Relay } from '../../node-agent/relay/relay.js';
import { makeEnvelopeVerifier } from '../../node-agent/signing.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { signEnvelope } from '../../protocol/signature.js';
import { DELIVER_STREAM, SUBMIT_STREAM, deliverConsumer, subjects } from '../../protocol/subjects.js';
import { renewCountry, type TlsIdentity } from '../../test/helpers/identities.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { waitFor } from '../../test/helpers/wait.js';
import type { FaultContext } from '../lib/context.js';
import { hubObserverConnection, type AttackNetwork } from '../lib/network.js';
import type { RowInput } from '../lib/report.js';

interface AuditRecord {
  event: string;
  code?: string;
  seqs?: number[];
}

interface Judged {
  what: string;
  result: 'refused' | 'leaked' | 'unexplained';
  detail: string;
}

/** The leaf's DER and the key, for signing as `who`. */
async function signerOf(who: { cert: string; key: string }): Promise<(e: Envelope) => Promise<Envelope>> {
  const leaf = who.cert.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0] ?? who.cert;
  const der = new Uint8Array(new X509Certificate(leaf).raw);
  const key = await importP256PrivateKey(who.key, 'attack key');
  return (e) => signEnvelope(e, key, der);
}

function draft(from: string, over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from, to: ['DE'], priority: 'routine', handling: 'public', created: new Date().toISOString(), body: 'attack', ...over };
}

/** A sender's connection, its JetStream client and the rejection events it receives. */
class Sender {
  readonly rejections = new Map<string, string>();
  readonly js: JetStreamClient;
  readonly country: string;

  private constructor(readonly nc: NatsConnection, country: string) {
    this.js = jetstream(nc, { timeout: 5_000 });
    this.country = country;
    nc.subscribe(subjects.event(country), {
      callback: (_err, m) => {
        try {
          const e = JSON.parse(m.string()) as { type?: string; id?: string; code?: string };
          if (e.type === 'rejected' && typeof e.id === 'string' && typeof e.code === 'string') this.rejections.set(e.id, e.code);
        } catch {
          // Not an event of ours.
        }
      },
    });
  }

  static async open(net: AttackNetwork, who: TlsIdentity, country: string): Promise<Sender> {
    const nc = await net.connect(who, country);
    await nc.flush();
    return new Sender(nc, country);
  }

  submit(bytes: Uint8Array | string, msgID: string) {
    return this.js.publish(subjects.submit(this.country), bytes, { msgID });
  }
}

/** Stored copies of envelope `id` in DELIVER, for any recipient (read with a throwaway ordered consumer as the hub). */
async function storedCopies(hubNc: NatsConnection, id: string): Promise<number> {
  const jsm = await jetstreamManager(hubNc);
  const total = (await jsm.streams.info(DELIVER_STREAM)).state.messages;
  if (total === 0) return 0;
  const consumer = await jetstream(hubNc).consumers.get(DELIVER_STREAM, { deliver_policy: DeliverPolicy.All });
  let seen = 0;
  let copies = 0;
  for await (const m of await consumer.fetch({ max_messages: total, expires: 5_000 })) {
    seen += 1;
    try {
      if ((JSON.parse(m.string()) as { id?: unknown }).id === id) copies += 1;
    } catch {
      // Not an envelope: a stray marker, counted by nobody.
    }
    if (seen >= total) break;
  }
  return copies;
}

async function auditOf(net: AttackNetwork, id: string): Promise<AuditRecord[]> {
  const answer = await net.admin('GET', `/audit/messages/${id}`);
  if (answer.status !== 200) throw new Error(`audit of ${id}: ${answer.status} ${answer.text}`);
  return answer.json as AuditRecord[];
}

/** Submits `bytes` (envelope `id`) as `sender` and judges the router's answer against `codes`. */
async function judgeSubmission(net: AttackNetwork, hubNc: NatsConnection, sender: Sender, what: string, id: string, bytes: Uint8Array | string, codes: string[]): Promise<Judged> {
  await sender.submit(bytes, id);
  try {
    await waitFor(`the router's answer to ${what}`, async () => sender.rejections.has(id) || (await auditOf(net, id)).some((r) => r.event === 'routed'), 15_000, 50);
  } catch {
    return { what, result: 'unexplained', detail: 'no rejection event and no routing within 15 s' };
  }
  const audit = await auditOf(net, id);
  const copies = await storedCopies(hubNc, id);
  const code = sender.rejections.get(id);
  if (copies > 0 || audit.some((r) => r.event === 'routed')) return { what, result: 'leaked', detail: `routed: ${copies} stored copies, audit ${audit.map((r) => r.event).join(',')}` };
  const audited = audit.find((r) => r.event === 'rejected');
  if (code !== undefined && codes.includes(code) && audited?.code === code) return { what, result: 'refused', detail: code };
  return { what, result: 'unexplained', detail: `event ${String(code)}, audit ${JSON.stringify(audit)}, expected ${codes.join(' or ')}` };
}

function rowOf(scenario: string, judged: Judged[], started: number, extra: { duplicated?: number; notes?: string[] } = {}): RowInput {
  const notes = [...(extra.notes ?? [])];
  for (const j of judged) notes.push(j.result === 'refused' ? `${j.what}: ${j.detail}` : `${j.result === 'leaked' ? 'LEAK' : 'UNEXPLAINED'}: ${j.what}: ${j.detail}`);
  return {
    scenario,
    kind: 'attack',
    attempts: judged.length,
    refused: judged.filter((j) => j.result === 'refused').length,
    leaked: judged.filter((j) => j.result === 'leaked').length,
    duplicated: extra.duplicated ?? 0,
    notes,
    ms: performance.now() - started,
  };
}

/** Forged senders and signatures, a revoked certificate, an expired envelope. */
export async function attackEnvelopes(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const hubNc = await hubObserverConnection(net);
  const fr = await Sender.open(net, net.countries.FR, 'FR');
  const signFr = await signerOf(net.countries.FR);
  const signDe = await signerOf(net.countries.DE);
  const signForeign = await signerOf(net.foreignCountry);
  const rows: RowInput[] = [];

  let started = performance.now();
  const forged: Judged[] = [];
  const asDe = await signFr(draft('DE', { to: ['IT'] }));
  forged.push(await judgeSubmission(net, hubNc, fr, "from: DE, submitted on FR's subject", asDe.id, JSON.stringify(asDe), ['ROUTER_SENDER_MISMATCH']));
  const stolen = await signDe(draft('FR'));
  forged.push(await judgeSubmission(net, hubNc, fr, "from: FR, signed with DE's key and certificate", stolen.id, JSON.stringify(stolen), ['ENVELOPE_SENDER_MISMATCH']));
  const mixed = { ...(await signFr(draft('FR'))), sigCert: stolen.sigCert };
  forged.push(await judgeSubmission(net, hubNc, fr, "FR's signature under DE's certificate", mixed.id, JSON.stringify(mixed), ['ENVELOPE_BAD_SIGNATURE']));
  const tampered = await signFr(draft('FR', { body: 'original' }));
  forged.push(await judgeSubmission(net, hubNc, fr, 'body changed after signing', tampered.id, JSON.stringify({ ...tampered, body: 'changed' }), ['ENVELOPE_BAD_SIGNATURE']));
  const unsigned = draft('FR');
  forged.push(await judgeSubmission(net, hubNc, fr, 'no signature', unsigned.id, JSON.stringify(unsigned), ['ENVELOPE_UNSIGNED']));
  const foreign = await signForeign(draft('FR'));
  forged.push(await judgeSubmission(net, hubNc, fr, 'signed by an FR certificate of another root CA', foreign.id, JSON.stringify(foreign), ['ENVELOPE_BAD_CERTIFICATE']));
  rows.push(rowOf('envelopes: forged sender, stolen, foreign, tampered and missing signatures', forged, started));

  started = performance.now();
  const oldIt = net.countries.IT;
  const signOldIt = await signerOf(oldIt);
  net.countries.IT = await renewCountry(net, oldIt);
  const revoked: Judged[] = [];
  // The renewal reloads the broker with IT's new pin: the old certificate no longer gets in.
  try {
    await waitFor('the old IT certificate refused by the broker', async () => {
      try {
        const nc = await net.connect(oldIt, 'IT');
        await nc.close();
        return false;
      } catch {
        return true;
      }
    }, 10_000, 100);
    revoked.push({ what: 'broker connection with the superseded certificate', result: 'refused', detail: 'handshake refused (pin removed)' });
  } catch {
    revoked.push({ what: 'broker connection with the superseded certificate', result: 'leaked', detail: 'still admitted 10 s after the renewal' });
  }
  const it = await Sender.open(net, net.countries.IT, 'IT');
  const old = await signOldIt(draft('IT'));
  revoked.push(await judgeSubmission(net, hubNc, it, 'signed with the certificate the renewal revoked, over the new connection', old.id, JSON.stringify(old), ['ENVELOPE_CERT_REVOKED']));
  rows.push(rowOf('envelopes: signed by a revoked (superseded) certificate', revoked, started));

  started = performance.now();
  const hour = 3600_000;
  const stale = await signFr(draft('FR', { created: new Date(Date.now() - 2 * hour).toISOString(), expires: new Date(Date.now() - hour).toISOString() }));
  const justNow = await signFr(draft('FR', { created: new Date(Date.now() - 2_000).toISOString(), expires: new Date(Date.now() - 1).toISOString() }));
  rows.push(
    rowOf('envelopes: expires already passed', [
      await judgeSubmission(net, hubNc, fr, 'expired an hour ago', stale.id, JSON.stringify(stale), ['ROUTER_EXPIRED']),
      await judgeSubmission(net, hubNc, fr, 'expired a millisecond before submission', justNow.id, JSON.stringify(justNow), ['ROUTER_EXPIRED']),
    ], started),
  );
  return rows;
}

/** Replays within the duplicate windows, and past them into DE's real inbox. */
export async function attackReplays(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const started = performance.now();
  const hubNc = await hubObserverConnection(net);
  const jsm = await jetstreamManager(hubNc);
  const fr = await Sender.open(net, net.countries.FR, 'FR');
  const signFr = await signerOf(net.countries.FR);

  // DE's real relay, attached as DE, with the agent's signature checks; receipts signed as DE.
  const deState = await tempDir(ctx.owner, 'ncbnet-faults-de-');
  const signDe = await signerOf(net.countries.DE);
  const relayLog: string[] = [];
  const relay = await Relay.open({ country: 'DE', stateDir: deState, log: pino({ level: 'debug' }, { write: (line: string) => void relayLog.push(line) }), verify: makeEnvelopeVerifier(net.rootPem, net.countries.DE.chain), sign: signDe });
  ctx.owner.teardown(() => relay.stop());
  await relay.attach(await net.connect(net.countries.DE, 'DE'));

  const judged: Judged[] = [];
  const original = await signFr(draft('FR', { subject: 'replay target' }));
  const bytes = JSON.stringify(original);
  await fr.submit(bytes, original.id);
  await waitFor('the original in DE\'s inbox', () => relay.inbox({ includeAcked: true, limit: 1000 }).some((i) => i.id === original.id), 20_000, 50);
  const inboxCopies = () => relay.inbox({ includeAcked: true, limit: 1000 }).filter((i) => i.id === original.id).length;
  const routedSeqs = async () => (await auditOf(net, original.id)).filter((r) => r.event === 'routed').map((r) => JSON.stringify(r.seqs ?? []));
  const notes = [`original ${original.id} routed and in DE's inbox`];

  const again = await fr.submit(bytes, original.id);
  judged.push(again.duplicate ? { what: 'same submission, same Nats-Msg-Id', result: 'refused', detail: 'SUBMIT dropped it as a duplicate' } : { what: 'same submission, same Nats-Msg-Id', result: 'leaked', detail: `SUBMIT stored it again (seq ${again.seq})` });

  const renamed = await fr.submit(bytes, `${original.id}-again`);
  await waitFor('the router done with SUBMIT', async () => (await jsm.streams.info(SUBMIT_STREAM)).state.messages === 0, 15_000, 50);
  const copies = await storedCopies(hubNc, original.id);
  const routed = await routedSeqs();
  judged.push(
    copies === 1
      ? { what: 'same envelope, new Nats-Msg-Id', result: 'refused', detail: `SUBMIT took it (seq ${renamed.seq}); DELIVER kept one copy (window on ${original.id}.DE)` }
      : { what: 'same envelope, new Nats-Msg-Id', result: 'leaked', detail: `${copies} copies stored for DE` },
  );
  if (routed.length > 1) notes.push(`observation: the audit holds ${routed.length} 'routed' records for ${original.id} (DELIVER seqs ${routed.join(' and ')}): the router records the replay as routed again although DELIVER dropped the copy as a duplicate`);

  // Past both windows: the hub itself pushes the envelope into DE's subject under a new id.
  await jetstream(hubNc).publish(subjects.deliver('DE'), bytes, { msgID: `${original.id}.DE.replayed` });
  await waitFor("DE's relay done with deliver-DE", async () => {
    const ci = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer('DE'));
    return ci.num_pending === 0 && ci.num_ack_pending === 0;
  }, 15_000, 50);
  const inInbox = inboxCopies();
  const dropped = relayLog.some((l) => l.includes('duplicate delivery dropped') && l.includes(original.id));
  const pushed = "the envelope delivered to DE a second time, past the hub's windows";
  judged.push(
    inInbox > 1
      ? { what: pushed, result: 'leaked', detail: `${inInbox} copies in DE's inbox` }
      : dropped && inInbox === 1
        ? { what: pushed, result: 'refused', detail: "DE's relay dropped the known id ('duplicate delivery dropped')" }
        : { what: pushed, result: 'unexplained', detail: `${inInbox} in the inbox, no duplicate drop logged` },
  );
  await relay.stop();
  return [rowOf('envelopes: replays (SUBMIT window, DELIVER window, recipient inbox)', judged, started, { duplicated: Math.max(0, copies - 1) + Math.max(0, inInbox - 1), notes })];
}
