import { z } from 'zod';
import { AgentFlowError } from './errors.js';

/**
 * The HTTP headers AgentFlow sends to each MCP server reached by URL (its credentials), by server
 * name: the `mcp` secret (`agentflow/<env>/mcp`) in the cloud, `AGENTFLOW_MCP_HEADERS` locally.
 *
 * @example
 * ```json
 * { "tracker": { "headers": { "Authorization": "Bearer trk_…", "X-Tenant": "acme" } } }
 * ```
 */
export type McpHeaders = Readonly<Record<string, { readonly headers: Readonly<Record<string, string>> }>>;

/**
 * The headers of one MCP server, read when AgentFlow first connects to it: undefined (or `{}`)
 * for a server without any, such as an open one.
 */
export type McpHeadersSource = (server: string) => Promise<Readonly<Record<string, string>> | undefined>;

/** The environment variable that holds {@link McpHeaders} as JSON for the local runtime. */
export const MCP_HEADERS_ENV = 'AGENTFLOW_MCP_HEADERS';

/** A server name as tools are offered under it (`<server>__<tool>`). */
const SERVER_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** A header name: an RFC 9110 token. Source: https://www.rfc-editor.org/rfc/rfc9110#section-5.1 (read 2026-11). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/**
 * A header value: visible ASCII, spaces and tabs inside, none at either end (no CR or LF, so no
 * header can be smuggled in). Source: https://www.rfc-editor.org/rfc/rfc9110#section-5.5 (read 2026-11).
 */
const HEADER_VALUE = /^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?$/;
/** Headers the streamable HTTP transport sets itself: a secret cannot replace them. */
const TRANSPORT_HEADERS = new Set([
  'accept',
  'content-type',
  'content-length',
  'host',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);

/**
 * The schema of {@link McpHeaders}. Its messages never hold a header value.
 */
const McpHeadersSchema = z.record(
  z.string().regex(SERVER_NAME, { error: 'a server name is letters, digits, "_" and "-" (1–64)' }),
  z
    .object({
      headers: z.record(
        z
          .string()
          .regex(HEADER_NAME, { error: 'a header name is an HTTP token (letters, digits, "-", …)' })
          .refine((name) => !TRANSPORT_HEADERS.has(name.toLowerCase()), { error: 'this header is set by the MCP transport itself' }),
        z.string().regex(HEADER_VALUE, { error: 'a header value is printable ASCII with no line break or surrounding space' }),
      ),
    })
    .strict(),
);

/** An `mcp` secret or `AGENTFLOW_MCP_HEADERS` that is not {@link McpHeaders}. Its message names where, never a value. */
export class McpHeadersError extends AgentFlowError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'McpHeadersError';
  }
}

/** A path of an issue without anything secret: a key is shown only when it is a valid name (a public one). */
function safePath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => {
      const key = String(p);
      if (i === 0) return SERVER_NAME.test(key) ? key : '<a server name>';
      if (i === 2) return HEADER_NAME.test(key) ? key : '<a header name>';
      return key;
    })
    .join('.');
}

/**
 * Reads the MCP servers' headers (the parsed JSON of the `mcp` secret or of `AGENTFLOW_MCP_HEADERS`).
 * @param source - what the value came from, for the error (the secret's or the variable's name)
 * @throws McpHeadersError naming the source, the server and the header (never a value) when the shape is wrong
 * @example parseMcpHeaders({ tracker: { headers: { Authorization: 'Bearer …' } } }, 'agentflow/prod/mcp')
 */
export function parseMcpHeaders(value: unknown, source: string): McpHeaders {
  const parsed = McpHeadersSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => {
    // A record key's issue holds the key schema's own issues; an unknown key is not quoted (it may be a misplaced value).
    const message =
      i.code === 'invalid_key'
        ? (i.issues[0]?.message ?? i.message)
        : i.code === 'unrecognized_keys'
          ? 'only "headers" is allowed'
          : i.message;
    return i.path.length > 0 ? `${safePath(i.path)}: ${message}` : message;
  });
  throw new McpHeadersError(
    `${source} is not { "<server>": { "headers": { "<name>": "<value>" } } }: ${problems.join('; ')} (values are not shown)`,
  );
}

/**
 * A {@link McpHeadersSource} over `load`, which reads (and caches) the JSON text of the `mcp` secret
 * or of `AGENTFLOW_MCP_HEADERS`, undefined when there is none: each call parses and checks the
 * whole value, then gives the server's headers, none for a server it does not name.
 * @param source - the secret's or the variable's name, for errors
 * @throws McpHeadersError (from the source) when the text is not JSON or not {@link McpHeaders}; the
 *   message never quotes the text (a JSON parser's would)
 * @example mcpHeadersSource(async () => process.env.AGENTFLOW_MCP_HEADERS, 'AGENTFLOW_MCP_HEADERS')
 */
export function mcpHeadersSource(load: () => Promise<string | undefined>, source: string): McpHeadersSource {
  return async (server) => {
    const text = await load();
    if (text === undefined || text.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new McpHeadersError(`${source} is not JSON (its text is not shown)`);
    }
    return parseMcpHeaders(value, source)[server]?.headers;
  };
}

/** Shortest header value, or credential after its scheme, that is taken out of what a server answers. */
const MIN_SCRUBBED_CHARS = 8;

/**
 * The parts of header values to take out of any text a server sends back: each value and the
 * credential after an auth scheme (`Bearer <credential>`), when {@link MIN_SCRUBBED_CHARS} long or more
 * (a shorter value is an id such as a tenant, not a credential), longest first.
 */
export function headerSecrets(headers: Readonly<Record<string, string>>): string[] {
  const parts = Object.values(headers).flatMap((v) => {
    const credential = /^[A-Za-z][A-Za-z0-9+.-]*\s+(\S.*)$/.exec(v)?.[1];
    return credential ? [v, credential] : [v];
  });
  return [...new Set(parts.filter((p) => p.length >= MIN_SCRUBBED_CHARS))].sort((a, b) => b.length - a.length);
}

/**
 * `text` with every one of `secrets` replaced by `[redacted: MCP header]`, and how many were replaced.
 * @example scrubSecrets('bad token s3cr3t-token', ['s3cr3t-token']) // { text: 'bad token [redacted: MCP header]', count: 1 }
 */
export function scrubSecrets(text: string, secrets: readonly string[]): { text: string; count: number } {
  let out = text;
  let count = 0;
  for (const s of secrets) {
    const pieces = out.split(s);
    count += pieces.length - 1;
    out = pieces.join('[redacted: MCP header]');
  }
  return { text: out, count };
}
