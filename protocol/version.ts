/** ncbnet's version, reported by both CLIs and in heartbeats. Kept in step with package.json (a test checks). */
export const VERSION = '0.1.0';
