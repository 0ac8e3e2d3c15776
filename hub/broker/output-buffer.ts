/**
 * nats-server's recent stderr/stdout, bounded, for error messages; and the per-line signals the
 * supervisor needs from it. Lines are parsed as they arrive, since the kept text is truncated.
 */
export class OutputBuffer {
  readonly #maxChars: number;
  readonly #onErrorLine: (line: string) => void;
  #text = '';
  #partialLine = '';
  #reloadFailures = 0;
  #lastReloadFailure = '';

  /** `onErrorLine` sees every `[ERR]`/`[FTL]` line (to log it once, as it happens). */
  constructor(maxChars: number, onErrorLine: (line: string) => void) {
    this.#maxChars = maxChars;
    this.#onErrorLine = onErrorLine;
  }

  /** Reloads nats-server refused so far (`[ERR] Failed to reload server configuration: ...`, 2.9.10 signal.go). */
  get reloadFailures(): number {
    return this.#reloadFailures;
  }

  /** The reason of the last refused reload. */
  get lastReloadFailure(): string {
    return this.#lastReloadFailure;
  }

  append(chunk: string): void {
    this.#text += chunk;
    if (this.#text.length > this.#maxChars) this.#text = this.#text.slice(-this.#maxChars);
    const lines = (this.#partialLine + chunk).split('\n');
    this.#partialLine = lines.pop() ?? '';
    for (const line of lines) {
      const failed = /\[ERR\] Failed to reload server configuration: (.*)$/.exec(line);
      if (failed) {
        this.#reloadFailures += 1;
        this.#lastReloadFailure = failed[1] ?? line;
      }
      if (line.includes('[ERR]') || line.includes('[FTL]')) this.#onErrorLine(line);
    }
  }

  /** Everything kept. */
  text(): string {
    return this.#text;
  }

  /** The last `chars` characters. */
  tail(chars: number): string {
    return this.#text.slice(-chars);
  }
}
