/**
 * The one import point for @peculiar/x509. It resolves its algorithm registry through tsyringe,
 * which needs the reflect-metadata polyfill loaded first; importing x509 from here guarantees
 * the order. Every call passes Node's WebCrypto explicitly, so no global provider is set.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export { x509 };

/** The WebCrypto implementation every x509 call uses (Node's built-in). */
export const webcrypto: Crypto = globalThis.crypto;
