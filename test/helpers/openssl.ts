import { execFile } from 'node:child_process';

/** What one `openssl` run gave. */
export interface OpensslResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the system `openssl` (an independent implementation that judges ncbnet's certificates,
 * CRLs and OCSP responses). Never throws on a non-zero exit: tests assert on `code`.
 */
export function openssl(args: readonly string[], opts: { cwd?: string; input?: string } = {}): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`openssl could not run: ${err.message}`, { cause: err }));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs openssl and throws with its stderr when it fails (for setup steps, not for the checks). */
export async function opensslOk(args: readonly string[], opts: { cwd?: string; input?: string } = {}): Promise<string> {
  const r = await openssl(args, opts);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Makes a key and CSR with openssl in `dir`; `key` is an openssl -newkey spec (`ec`, `ed25519`, `rsa:512`). */
export async function makeCsr(dir: string, name: string, subject: string, key: 'ec' | 'ec384' | 'ed25519' | 'rsa:512' | 'rsa:2048' = 'ec', extraArgs: readonly string[] = []): Promise<{ csrPath: string; keyPath: string }> {
  const keyPath = `${dir}/${name}.key`;
  const csrPath = `${dir}/${name}.csr`;
  const keyArgs =
    key === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
    : key === 'ec384' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1']
    : ['-newkey', key];
  await opensslOk(['req', '-new', ...keyArgs, '-nodes', '-keyout', keyPath, '-subj', subject, '-out', csrPath, ...extraArgs]);
  return { csrPath, keyPath };
}
