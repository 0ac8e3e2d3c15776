/**
 * Renders rows as a plain-text table for people (scripts use `--json`). Columns are as wide as
 * their widest cell; numbers are right-aligned. No colours: output is often piped or logged.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const line = (cells: readonly (string | number)[]) =>
    cells
      .map((c, i) => {
        const text = String(c ?? '');
        const width = widths[i] ?? text.length;
        return typeof c === 'number' ? text.padStart(width) : text.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
