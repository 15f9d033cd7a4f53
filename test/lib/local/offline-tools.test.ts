import { describe, expect, it } from 'vitest';
import { bedrockToolTurn, offlineToolCall, openAIToolTurn } from '../../../lib/local/offline-tools.js';

/*
 * The offline model's tool calls (lib/local/offline-tools.ts): the `call` / `repeat` directives and
 * how each wire format's tools and tool results are read. The request agents' own choice is tested
 * in offline-requests.test.ts.
 */

const offered = [{ name: 'issues__whoami', inputSchema: { type: 'object', properties: {} } }];
const result = (name: string) => ({ name, text: 'x', isError: false });

describe('Function: offlineToolCall', () => {
  it('calls the `call` lines in order, one per turn, then answers', () => {
    const task = 'Do it.\ncall issues__create_ticket {"title": "Crash"}\ncall issues__whoami';
    const turn = { system: 'You handle requests.', task, offered };
    expect(offlineToolCall({ ...turn, results: [] })).toEqual({ name: 'issues__create_ticket', input: { title: 'Crash' } });
    expect(offlineToolCall({ ...turn, results: [result('issues__create_ticket')] })).toEqual({ name: 'issues__whoami', input: {} });
    expect(offlineToolCall({ ...turn, results: [result('a'), result('b')] })).toBeUndefined();
  });

  it('calls a `repeat` line on every turn, and a directive with broken JSON without input', () => {
    const turn = { system: '', task: 'repeat issues__whoami {"a": }', offered };
    expect(offlineToolCall({ ...turn, results: [result('x'), result('x'), result('x')] })).toEqual({ name: 'issues__whoami', input: {} });
  });

  it('calls nothing when the request offers no tools, whatever the task says', () => {
    expect(offlineToolCall({ system: '', task: 'call issues__whoami {}', offered: [], results: [] })).toBeUndefined();
  });
});

describe('Function: openAIToolTurn', () => {
  it('reads the offered tools and names each tool message by the call it answers, an ERROR: text as an error', () => {
    const tools = [{ type: 'function', function: { name: 'ci__get_pipeline', parameters: { type: 'object', properties: { pr: {} } } } }];
    const messages = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', function: { name: 'ci__get_pipeline' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'ERROR: no pipeline for PR 9' },
    ];
    expect(openAIToolTurn(tools, messages)).toEqual({
      offered: [{ name: 'ci__get_pipeline', inputSchema: { type: 'object', properties: { pr: {} } } }],
      results: [{ name: 'ci__get_pipeline', text: 'no pipeline for PR 9', isError: true }],
    });
  });
});

describe('Function: bedrockToolTurn', () => {
  it('reads toolSpec schemas and names each toolResult block by its toolUse, status "error" as an error', () => {
    const toolConfig = { tools: [{ toolSpec: { name: 'support__get_order', inputSchema: { json: { type: 'object' } } } }] };
    const messages = [
      { content: [{ text: 'hi' }] },
      { content: [{ toolUse: { toolUseId: 't1', name: 'support__get_order', input: {} } }] },
      { content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'Order 1234' }, { json: { a: 1 } }] } }] },
      { content: [{ toolResult: { toolUseId: 't9', content: [{ text: 'boom' }], status: 'error' } }] },
    ];
    expect(bedrockToolTurn(toolConfig, messages)).toEqual({
      offered: [{ name: 'support__get_order', inputSchema: { type: 'object' } }],
      results: [
        { name: 'support__get_order', text: 'Order 1234\n{"a":1}', isError: false },
        { name: '', text: 'boom', isError: true },
      ],
    });
  });
});
