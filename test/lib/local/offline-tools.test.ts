import { describe, expect, it } from 'vitest';
import { answerSystemPrompt } from '../../../lambdas/core/answer.js';
import { AgentItemSchema, type ChangedFile } from '../../../lambdas/core/contracts.js';
import { chunkMessage, systemPrompt } from '../../../lambdas/core/prompt.js';
import { renderFile } from '../../../lambdas/core/tokens.js';
import {
  bedrockToolTurn,
  offlineReviewToolCall,
  offlineToolCall,
  openAIToolTurn,
  readableChunkFiles,
} from '../../../lib/local/offline-tools.js';
import { exampleChange } from '../../helpers.js';

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

/** A review agent (code-review) and a chunk of three files: a removed one, a binary one, then two Kotlin files. */
const reviewer = AgentItemSchema.parse({
  name: 'code-review',
  model: { provider: 'bedrock', alias: 'claude-sonnet', modelId: 'anthropic.claude', contextWindow: 200_000, price: null },
  fallback: [],
  maxTokens: 4000,
  temperature: 0,
  categories: ['correctness'],
  tasks: [],
  prompt: 'You review Android code.',
});
const file = (over: Partial<ChangedFile>): ChangedFile => ({
  path: 'app/Main.kt',
  status: 'modified',
  additions: 1,
  deletions: 0,
  binary: false,
  patch: '@@ -1,1 +1,2 @@\n fun main() {\n+  val x = y!!',
  ...over,
});
const chunk = [
  file({ path: 'app/Old.kt', status: 'removed', additions: 0, deletions: 1, patch: '@@ -1,1 +0,0 @@\n-fun old() {}' }),
  file({ path: 'app/logo.png', binary: true, patch: '' }),
  file({ path: 'app/src/Cart (v2).kt' }),
  file({ path: 'app/src/Pay.kt' }),
]
  .map(renderFile)
  .join('\n');
const reviewTask = chunkMessage(reviewer, exampleChange(), chunk, 0, 1);
const builtin = ['agentflow__list_changed_files', 'agentflow__read_file', 'agentflow__search'].map((name) => ({
  name,
  inputSchema: { type: 'object' },
}));
const listing = (paths: string[]) => ({
  name: 'agentflow__list_changed_files',
  text: paths.map((p) => `${p}\tmodified\t+1 -0`).join('\n'),
  isError: false,
});

describe('Function: readableChunkFiles', () => {
  it('lists the chunk’s files in order, without removed and binary ones, a path with parentheses whole', () => {
    expect(readableChunkFiles(reviewTask)).toEqual(['app/src/Cart (v2).kt', 'app/src/Pay.kt']);
  });

  it('lists a file split in parts once', () => {
    expect(readableChunkFiles('### a/B.kt (modified, part 1)\nx\n### a/B.kt (modified, part 2)\ny')).toEqual(['a/B.kt']);
  });
});

describe('Function: offlineReviewToolCall', () => {
  const turn = { system: systemPrompt(reviewer), task: reviewTask, offered: builtin };

  it('lists the changed files, then reads the first readable file of the chunk the listing names, then answers', () => {
    expect(offlineToolCall({ ...turn, results: [] })).toEqual({ name: 'agentflow__list_changed_files', input: {} });
    const listed = listing(['app/Old.kt', 'app/logo.png', 'app/src/Cart (v2).kt', 'app/src/Pay.kt']);
    expect(offlineToolCall({ ...turn, results: [listed] })).toEqual({
      name: 'agentflow__read_file',
      input: { path: 'app/src/Cart (v2).kt' },
    });
    expect(
      offlineToolCall({ ...turn, results: [listed, { name: 'agentflow__read_file', text: 'fun main()', isError: false }] }),
    ).toBeUndefined();
  });

  it('skips a chunk file the listing does not name, and reads none when the listing names none', () => {
    expect(offlineReviewToolCall({ ...turn, results: [listing(['app/src/Pay.kt'])] })).toEqual({
      name: 'agentflow__read_file',
      input: { path: 'app/src/Pay.kt' },
    });
    expect(offlineReviewToolCall({ ...turn, results: [listing(['other/File.kt'])] })).toBeUndefined();
  });

  it('reads the first readable file at once when only read_file is offered, and calls nothing when only search is', () => {
    const read = builtin.filter((t) => t.name === 'agentflow__read_file');
    expect(offlineReviewToolCall({ ...turn, offered: read, results: [] })).toEqual({
      name: 'agentflow__read_file',
      input: { path: 'app/src/Cart (v2).kt' },
    });
    const search = builtin.filter((t) => t.name === 'agentflow__search');
    expect(offlineReviewToolCall({ ...turn, offered: search, results: [] })).toBeUndefined();
  });

  it('calls nothing for a system prompt that is not a review prompt, nor for a tool of another server', () => {
    expect(offlineReviewToolCall({ ...turn, system: 'You review code.', results: [] })).toBeUndefined();
    const requestSystem = answerSystemPrompt(reviewer);
    expect(offlineReviewToolCall({ ...turn, system: requestSystem, results: [] })).toBeUndefined();
    const other = [{ name: 'files__read_file', inputSchema: { type: 'object' } }];
    expect(offlineReviewToolCall({ ...turn, offered: other, results: [] })).toBeUndefined();
  });

  it('lets a `call` directive come first', () => {
    const task = `call agentflow__search {"query": "!!"}\n${reviewTask}`;
    expect(offlineToolCall({ ...turn, task, results: [] })).toEqual({ name: 'agentflow__search', input: { query: '!!' } });
    expect(offlineToolCall({ ...turn, task, results: [{ name: 'agentflow__search', text: 'x', isError: false }] })).toBeUndefined();
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
