import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { z } from 'zod';
import { type McpHeaders, type McpHeadersSource, mcpHeadersSource } from '../core/mcp-headers.js';

/**
 * Reads a JSON secret from Secrets Manager (cached for 5 minutes by Powertools Parameters) and
 * returns one string field of it.
 * @throws Error naming the secret and field when either is missing
 */
export async function secretField(secretName: string, field: string): Promise<string> {
  const value = await getSecret(secretName, { transform: 'json', maxAge: 300 });
  const parsed = z.record(z.string(), z.unknown()).safeParse(value);
  const v = parsed.success ? parsed.data[field] : undefined;
  if (typeof v !== 'string' || v === '') throw new Error(`secret ${secretName} has no string field "${field}"`);
  return v;
}

/** Like {@link secretField}, but undefined when the field is absent or empty (optional settings such as a previous secret). */
export async function optionalSecretField(secretName: string, field: string): Promise<string | undefined> {
  const value = await getSecret(secretName, { transform: 'json', maxAge: 300 });
  const parsed = z.record(z.string(), z.unknown()).safeParse(value);
  const v = parsed.success ? parsed.data[field] : undefined;
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A secret's current and previous value (`<field>` and `previous<Field>`), for rotations without downtime. */
export async function rotatingSecret(secretName: string, field: string): Promise<string[]> {
  const previous = `previous${field[0]?.toUpperCase() ?? ''}${field.slice(1)}`;
  const [current, old] = await Promise.all([secretField(secretName, field), optionalSecretField(secretName, previous)]);
  return old ? [current, old] : [current];
}

/**
 * The headers of the MCP servers reached by URL, from the `mcp` secret (`secretName`,
 * `agentflow/<env>/mcp`: see {@link McpHeaders}), read when a server is first connected and cached
 * for 5 minutes. A secret that does not exist gives no headers (every server is open).
 * @throws McpHeadersError when the secret is not JSON or not {@link McpHeaders} (never quoting it)
 */
export function secretMcpHeaders(secretName: string): McpHeadersSource {
  return mcpHeadersSource(async () => {
    try {
      // Parsed by mcpHeadersSource, not by Powertools' json transform: a JSON parser's error quotes the text.
      const value = await getSecret(secretName, { maxAge: 300 });
      return typeof value === 'string' ? value : undefined;
    } catch (e) {
      if (e instanceof Error && (e.cause as { name?: unknown } | undefined)?.name === 'ResourceNotFoundException') return undefined;
      throw e;
    }
  }, secretName);
}
