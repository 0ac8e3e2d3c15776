import { PemError, PKI_PEM_MALFORMED } from './errors.js';

/** One PEM block: its label (`CERTIFICATE`, `X509 CRL`, …) and DER bytes. */
export interface PemBlock {
  label: string;
  der: Uint8Array<ArrayBuffer>;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

/** Encodes DER as PEM with 64-column lines (RFC 7468). */
export function toPem(label: string, der: Uint8Array | ArrayBuffer): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Reads every PEM block in `text`. Strict where lenient decoders are dangerous: BEGIN and END
 * labels must agree and the body must be clean base64, so a truncated or spliced file is an error
 * (`PKI_PEM_MALFORMED`, naming `source`) rather than a silently shorter chain.
 */
export function readPemBlocks(text: string, source = 'input'): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const [, begin, body = '', end] = m;
    if (begin !== end) {
      throw new PemError(PKI_PEM_MALFORMED, `${source}: PEM block BEGIN ${begin} ends with END ${end}`);
    }
    const compact = body.replace(/\s+/g, '');
    if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64_BODY.test(compact)) {
      throw new PemError(PKI_PEM_MALFORMED, `${source}: PEM block ${begin} has a body that is not base64`);
    }
    blocks.push({ label: begin as string, der: new Uint8Array(Buffer.from(compact, 'base64')) });
  }
  const begins = text.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== blocks.length) {
    throw new PemError(PKI_PEM_MALFORMED, `${source}: ${begins - blocks.length} PEM block(s) are truncated`);
  }
  return blocks;
}

/** Reads the single block labelled one of `labels`; refuses none, several, or other labels. */
export function readOnePem(text: string, labels: readonly string[], source = 'input'): PemBlock {
  const blocks = readPemBlocks(text, source);
  if (blocks.length === 0) {
    throw new PemError(PKI_PEM_MALFORMED, `${source}: no PEM block found (expected ${labels.join(' or ')})`);
  }
  if (blocks.length > 1) {
    throw new PemError(PKI_PEM_MALFORMED, `${source}: ${blocks.length} PEM blocks found, expected one`);
  }
  const block = blocks[0] as PemBlock;
  if (!labels.includes(block.label)) {
    throw new PemError(PKI_PEM_MALFORMED, `${source}: PEM block is ${block.label}, expected ${labels.join(' or ')}`);
  }
  return block;
}
