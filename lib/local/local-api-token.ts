import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** Name of the file in the state folder that records the local API of a running serve/run. */
export const SERVE_STATE_FILE = 'serve.json';

/** Bytes of randomness in a local API token (base64url: 43 characters). */
export const LOCAL_API_TOKEN_BYTES = 32;

/** A new local API token: {@link LOCAL_API_TOKEN_BYTES} random bytes, base64url. */
export function newLocalApiToken(): string {
  return randomBytes(LOCAL_API_TOKEN_BYTES).toString('base64url');
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`, compared in constant time (both sides
 * are hashed to SHA-256 first, so neither their contents nor their lengths leak through timing).
 *
 * @example
 * bearerMatches(req.headers.authorization, token); // true for `Bearer ${token}`
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  const given = createHash('sha256')
    .update(m?.[1] ?? '')
    .digest();
  const expected = createHash('sha256').update(token).digest();
  return m !== null && token.length > 0 && timingSafeEqual(given, expected);
}

/** `<stateDir>/serve.json`: where the local API of the process holding the state folder listens. */
const ServeStateSchema = z.object({ url: z.string().url(), pid: z.number().int(), token: z.string().min(1) });

/** The local API of the serve/run holding a state folder. */
export type ServeState = z.infer<typeof ServeStateSchema>;

/**
 * Writes `<stateDir>/serve.json` with mode 0600 (owner only: it holds the token), through a
 * temporary file renamed over the old one, so a reader never sees half a file and an older file's
 * wider mode is not kept.
 */
export function writeServeState(stateDir: string, state: ServeState): string {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, SERVE_STATE_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, path);
  return path;
}

/** Reads `<stateDir>/serve.json`; undefined when it is missing or not a current serve state (no token). */
export function readServeState(stateDir: string): ServeState | undefined {
  const path = join(stateDir, SERVE_STATE_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const parsed = ServeStateSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Removes `<stateDir>/serve.json` (the process stops serving). */
export function removeServeState(stateDir: string): void {
  rmSync(join(stateDir, SERVE_STATE_FILE), { force: true });
}

/** The headers a local API client sends: the bearer token, and JSON for a body. */
export function localApiHeaders(token: string, json = false): Record<string, string> {
  return { authorization: `Bearer ${token}`, ...(json ? { 'content-type': 'application/json' } : {}) };
}
