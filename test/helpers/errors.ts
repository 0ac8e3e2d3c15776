/** The error a promise rejects with; fails the test (throws) when it resolves instead. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** An error and its causes on one line, for matching messages that nats.js wraps. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 5; e = e.cause) parts.push(`${e.name}: ${e.message}`);
  return parts.join(' <- ');
}
