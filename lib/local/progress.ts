import type { ProgressEvent } from './runtime.js';

/** Formats progress events as one line each, state by state (agents inside Map states indented). */
export function formatProgress(e: ProgressEvent): string | undefined {
  const who = e.agent ? `  ${e.state} [${e.agent}]` : e.state;
  switch (e.kind) {
    case 'entered':
      return e.agent || !e.state.startsWith('Agent failed') ? `▶ ${who}` : undefined;
    case 'exited':
      return `✔ ${who}${e.ms !== undefined ? ` (${e.ms} ms)` : ''}${e.detail ? ` — ${e.detail}` : ''}`;
    case 'retried':
      return `↻ ${who} — retry, ${e.detail}`;
    case 'caught':
      return `✖ ${who} — ${e.detail}`;
    case 'failed':
      return e.agent ? undefined : `✖ ${who} — ${e.detail}`;
    default: {
      const never: never = e.kind;
      return String(never);
    }
  }
}
