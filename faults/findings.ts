/**
 * What the fault suite found in the product and is not fixed yet, by scenario id and failure kind
 * (a row's `failures` keys, or its `missing` text up to the dash). The runner still marks these
 * rows FAIL or MISSING; the tap tests hold them as `todo`, so `make test` stays green while they
 * are open and says so the day one is fixed, and any failure NOT listed here fails the tests.
 */
export const KNOWN_FINDINGS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
};

/** The finding key of a row's `missing` text: the part before ` — `. */
export function missingKey(missing: string): string {
  return missing.split(' — ')[0] ?? missing;
}
