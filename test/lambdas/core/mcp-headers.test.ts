import { describe, expect, it } from 'vitest';
import { headerSecrets, McpHeadersError, mcpHeadersSource, parseMcpHeaders, scrubSecrets } from '../../../lambdas/core/mcp-headers.js';

const TOKEN = 'trk_live_9f8e7d6c5b4a3210';

describe('Function: parseMcpHeaders', () => {
  it('reads each server’s headers', () => {
    // Act
    const headers = parseMcpHeaders(
      { tracker: { headers: { Authorization: `Bearer ${TOKEN}`, 'X-Tenant': 'acme' } } },
      'agentflow/dev/mcp',
    );

    // Assess
    expect(headers).toEqual({ tracker: { headers: { Authorization: `Bearer ${TOKEN}`, 'X-Tenant': 'acme' } } });
  });

  it('rejects a value with a line break, a header the transport sets and an unknown key, naming where but never a value', () => {
    // Prepare
    const secret = {
      tracker: { headers: { Authorization: `Bearer ${TOKEN}\r\nX-Admin: 1`, 'Content-Type': 'text/plain' } },
      wiki: { headers: {}, token: TOKEN },
    };

    // Act
    const error = (() => {
      try {
        parseMcpHeaders(secret, 'agentflow/dev/mcp');
      } catch (e) {
        return e;
      }
    })();

    // Assess
    expect(error).toBeInstanceOf(McpHeadersError);
    const message = (error as Error).message;
    expect(message).toMatch(/^agentflow\/dev\/mcp is not /);
    expect(message).toContain('tracker.headers.Authorization: a header value is printable ASCII');
    expect(message).toContain('tracker.headers.Content-Type: this header is set by the MCP transport itself');
    expect(message).toContain('wiki');
    expect(message).not.toContain(TOKEN);
  });

  it('rejects a header name that is not an HTTP token without showing it (it may be a misplaced value)', () => {
    // Act & Assess
    expect(() => parseMcpHeaders({ tracker: { headers: { [`Bearer ${TOKEN}`]: 'x' } } }, 'AGENTFLOW_MCP_HEADERS')).toThrow(
      'AGENTFLOW_MCP_HEADERS is not { "<server>": { "headers": { "<name>": "<value>" } } }: tracker.headers.<a header name>: a header name is an HTTP token',
    );
  });
});

describe('Function: mcpHeadersSource', () => {
  it('gives a server its headers, none to a server the value does not name or when there is no value', async () => {
    // Prepare
    const source = mcpHeadersSource(async () => JSON.stringify({ tracker: { headers: { Authorization: `Bearer ${TOKEN}` } } }), 'x');

    // Act & Assess
    expect(await source('tracker')).toEqual({ Authorization: `Bearer ${TOKEN}` });
    expect(await source('wiki')).toBeUndefined();
    expect(await mcpHeadersSource(async () => undefined, 'x')('tracker')).toBeUndefined();
  });

  it('rejects text that is not JSON without quoting it (a JSON parser’s error would)', async () => {
    // Prepare
    const source = mcpHeadersSource(async () => `{ tracker: Bearer ${TOKEN}`, 'AGENTFLOW_MCP_HEADERS');

    // Act & Assess
    await expect(source('tracker')).rejects.toThrow(new McpHeadersError('AGENTFLOW_MCP_HEADERS is not JSON (its text is not shown)'));
  });
});

describe('Function: headerSecrets / scrubSecrets', () => {
  it('takes each value and the credential after its scheme out of a text, but not a short id', () => {
    // Prepare
    const secrets = headerSecrets({ Authorization: `Bearer ${TOKEN}`, 'X-Tenant': 'acme' });

    // Act
    const out = scrubSecrets(`got Bearer ${TOKEN}; token ${TOKEN} for acme`, secrets);

    // Assess
    expect(secrets).toEqual([`Bearer ${TOKEN}`, TOKEN]);
    expect(out).toEqual({ text: 'got [redacted: MCP header]; token [redacted: MCP header] for acme', count: 2 });
  });
});
