import { join } from 'node:path';

/** Where the CA keeps its files inside a hub state directory. */
export interface CaPaths {
  dir: string;
  rootCert: string;
  rootKey: string;
  caCert: string;
  caKey: string;
  ledger: string;
  tokens: string;
}

export function caPaths(stateDir: string): CaPaths {
  const dir = join(stateDir, 'pki');
  return {
    dir,
    rootCert: join(dir, 'root.crt'),
    rootKey: join(dir, 'root.key'),
    caCert: join(dir, 'hub-ca.crt'),
    caKey: join(dir, 'hub-ca.key'),
    ledger: join(dir, 'ledger.jsonl'),
    tokens: join(dir, 'tokens.jsonl'),
  };
}
