import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  agentPhases,
  type Catalog,
  formatDiagnostic,
  githubWebhookEvents,
  loadAgent,
  loadModels,
  loadWorkflow,
} from '../../../lib/workflow/index.js';
import { findModel } from '../../../lib/workflow/load.js';
import { DEFAULT_TEST_PATHS } from '../../../lib/workflow/model.js';
import { loadWorkspace, PROJECT_ROOT } from '../../../lib/workspace.js';
import { loadTestWorkflow, workflowErrors } from '../../helpers.js';

const ws = loadWorkspace();
const catalog = ws.catalog as Catalog;
const load = loadTestWorkflow;
const errors = workflowErrors;

const valid = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: review
    agents: [code-review, security]
`;

describe('Function: loadWorkspace', () => {
  it('loads the shipped workflows, agents and models without a diagnostic', () => {
    // Assess
    expect(ws.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect([...ws.workflows.keys()]).toContain('pr-review');
    expect(catalog.agents.size).toBeGreaterThanOrEqual(5);
  });

  it('ships pr-review as one parallel phase of code-review, security, test-coverage and documentation (then the verifier)', () => {
    const wf = ws.workflows.get('pr-review');
    expect(wf?.phases.map((p) => p.name)).toEqual(['review', 'verify']);
    const phase = wf?.phases[0];
    if (phase?.kind !== 'agents') throw new Error('expected an agent phase');
    expect(phase.parallel).toBe(true);
    expect(phase.agents.map((a) => a.name)).toEqual(['code-review', 'security', 'test-coverage', 'documentation']);
  });

  it('gives every model a price, a source and a date', () => {
    for (const [alias, m] of Object.entries(catalog.models.models)) {
      expect(m.price?.input, alias).toBeGreaterThan(0);
      expect(m.source, alias).toMatch(/^https:\/\//);
      expect(m.as_of, alias).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });
});

describe('Function: loadWorkflow (seed workflows of the design documents)', () => {
  const seeds = ['code-review.yml', 'pr-review.yml', 'test-generation.yml'];
  const seedWs = loadWorkspace(
    undefined,
    seeds.map((f) => join(PROJECT_ROOT, 'test', 'fixtures', 'seed', f)),
  );

  it('loads the three seed files unchanged', () => {
    expect(seedWs.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect([...seedWs.workflows.keys()].sort()).toEqual(['code-review', 'pr-review', 'test-generation']);
  });

  it('keeps the seed fixtures byte-identical to the design documents', () => {
    for (const f of seeds) {
      const original = join(PROJECT_ROOT, '..', 'shared', 'reference', 'seed-workflows', f);
      let text: string | undefined;
      try {
        text = readFileSync(original, 'utf8');
      } catch {
        continue; // shared/ is beside the clone on developer machines and in CI
      }
      expect(readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'seed', f), 'utf8')).toBe(text);
    }
  });

  it('normalises `agents:` + `execution: parallel` into one parallel phase', () => {
    const wf = seedWs.workflows.get('pr-review');
    expect(agentPhases(wf ?? { phases: [] }).map((p) => [p.name, p.parallel, p.agents.length])).toEqual([['review', true, 4]]);
    // Drafts are skipped by default, so a draft opened is reviewed when it is marked ready.
    expect(wf?.trigger.events).toEqual(['pull_request.opened', 'pull_request.ready_for_review']);
  });

  it('maps service claude-api to Bedrock and the fallback rule to an OpenAI fallback', () => {
    const wf = seedWs.workflows.get('code-review');
    const review = agentPhases(wf ?? { phases: [] })[0]?.agents.find((a) => a.name === 'code-review');
    expect(review?.model.provider).toBe('bedrock');
    expect(review?.model.alias).toBe('claude-3-opus');
    expect(review?.maxTokens).toBe(4000);
    expect(review?.fallback.some((f) => f.provider === 'openai')).toBe(true);
    expect(wf?.notifyOnFailure).toBe('slack-channel');
    expect(agentPhases(wf ?? { phases: [] })[0]?.required).toBe(true);
  });

  it('reads list-shaped conditions and a bare pull_request event', () => {
    const wf = seedWs.workflows.get('code-review');
    expect(wf?.trigger.filesChanged).toEqual(['*.swift', '*.m', '*.h']);
    expect(wf?.trigger.linesChanged).toEqual({ op: '>', value: 100 });
    expect(wf?.trigger.events).toContain('pull_request.synchronize');
    expect(seedWs.workflows.get('test-generation')?.trigger.testCoverage).toEqual({ op: '<', value: 80 });
  });

  it('orders the four test-generation phases by depends_on, one agent at a time', () => {
    const wf = seedWs.workflows.get('test-generation');
    expect(wf?.phases.map((p) => [p.name, p.dependsOn])).toEqual([
      ['analysis', []],
      ['generation', ['analysis']],
      ['review', ['generation']],
      ['execution', ['review']],
    ]);
    expect(agentPhases(wf ?? { phases: [] })[0]?.maxConcurrency).toBe(1);
  });
});

describe('Function: loadWorkflow (bad input)', () => {
  it('accepts a minimal valid workflow', () => {
    expect(errors(valid)).toEqual([]);
  });

  it('rejects malformed YAML with its line and column', () => {
    expect(errors('name: T\ntrigger: { event: pull_request.opened\nphases: []\n')).toEqual([
      'workflows/test.yml:2:10: the { here is never closed: add the closing }',
    ]);
  });

  it('rejects an unknown agent at the line of the entry', () => {
    expect(errors(valid.replace('security', 'securty'))).toEqual([
      expect.stringMatching(/^workflows\/test\.yml:5:27: unknown agent "securty"/),
    ]);
  });

  it('rejects an unknown model at its line', () => {
    const text = `${valid}      - agent: test-coverage\n        model: gpt-99\n`.replace(
      'agents: [code-review, security]\n',
      'agents:\n      - code-review\n',
    );
    expect(errors(text)).toEqual([expect.stringMatching(/:8:16: unknown model "gpt-99"/)]);
  });

  it('rejects a model of the wrong provider', () => {
    const text = valid.replace(
      'agents: [code-review, security]',
      'agents:\n      - agent: security\n        provider: openai\n        model: claude-haiku',
    );
    expect(errors(text).join()).toMatch(/claude-haiku" is a bedrock model, not openai/);
  });

  it('rejects an unknown field and names it', () => {
    expect(errors(`${valid}colour: blue\n`)).toEqual([expect.stringMatching(/:6:1: unknown field "colour"/)]);
  });

  it('rejects a dependency cycle on every phase of it', () => {
    const text = `name: T
trigger: { event: manual }
phases:
  - name: a
    depends_on: [b]
    agents: [code-review]
  - name: b
    depends_on: [a]
    agents: [security]
`;
    const e = errors(text);
    expect(e).toHaveLength(2);
    expect(e[0]).toMatch(/:5:17: phase "a" is on a dependency cycle/);
    expect(e[1]).toMatch(/:8:17: phase "b" is on a dependency cycle/);
  });

  it('rejects an unknown phase in depends_on and a duplicate phase name', () => {
    const text = `name: T
trigger: { event: manual }
phases:
  - name: a
    agents: [code-review]
  - name: a
    depends_on: [nope]
    agents: [security]
`;
    const e = errors(text).join('\n');
    expect(e).toMatch(/:6:11: duplicate phase name "a"/);
    expect(e).toMatch(/:7:18: depends_on: unknown phase "nope"/);
  });

  it('rejects an invalid glob', () => {
    const text = valid.replace(
      'trigger: { event: pull_request.opened }',
      'trigger:\n  event: pull_request.opened\n  conditions:\n    files_changed: ["src/[abc"]',
    );
    expect(errors(text)).toEqual([expect.stringMatching(/:5:21: files_changed\.0: "src\/\[abc" has unbalanced brackets/)]);
  });

  it('rejects a bad comparison with the field path', () => {
    const text = valid.replace(
      'trigger: { event: pull_request.opened }',
      'trigger:\n  event: pull_request.opened\n  conditions:\n    lines_changed: lots',
    );
    expect(errors(text)[0]).toMatch(/:5:20: trigger\.conditions\.lines_changed: write a comparison like "> 100"/);
  });

  it('refuses an approval phase that would run side by side with another phase', () => {
    const text = `${valid}  - name: approve\n    approval: { channel: "#leads", approvers: [U1AAA], timeout: 24h }\n`;
    expect(errors(text)[0]).toMatch(/approval phase "approve" would run side by side with review/);
  });

  it('refuses on_timeout: escalate without an escalate block, and a phase with both agents and approval', () => {
    const text = `${valid}  - name: approve\n    depends_on: [review]\n    approval: { channel: "#leads", approvers: [U1AAA], timeout: 24h, on_timeout: escalate }\n`;
    expect(errors(text)[0]).toMatch(/on_timeout: escalate needs an escalate/);
    const both = `${valid}  - name: approve\n    depends_on: [review]\n    agents: [security]\n    approval: { channel: "#leads", approvers: [U1AAA], timeout: 24h }\n`;
    expect(errors(both)[0]).toMatch(/exactly one of agents, approval, ci, route or guardrail/);
  });
});

describe('Function: loadModels', () => {
  it('rejects a default that names an unknown model', () => {
    const text = readFileSync(join(PROJECT_ROOT, 'workflows', 'models.yml'), 'utf8').replace('openai: gpt-4.1-mini', 'openai: gpt-0');
    expect(loadModels('models.yml', text).diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^models\.yml:\d+:11: defaults\.openai: unknown model "gpt-0"/),
    ]);
  });

  const models = readFileSync(join(PROJECT_ROOT, 'workflows', 'models.yml'), 'utf8');
  const qwen = (structuredOutput: string) => `
  qwen-coder:
    provider: openai-compatible
    id: qwen2.5-coder:32b
    context_window: 32768
    max_output: 8192
    tier: medium
    source: https://ollama.com/library/qwen2.5-coder
    as_of: 2026-11-29
    structured_output: ${structuredOutput}
`;

  it('rejects structured_output on a bedrock or openai model at its line and column', () => {
    const text = models.replace(
      '    as_of: 2025-11-24\n  claude-sonnet:',
      '    as_of: 2025-11-24\n    structured_output: json_schema\n  claude-sonnet:',
    );
    expect(loadModels('models.yml', text).diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(
        /^models\.yml:\d+:24: models\.claude-opus\.structured_output: only openai-compatible models take it \(bedrock always enforces the answer format\); remove it/,
      ),
    ]);
  });

  it('rejects a structured_output that is none of json_schema, json_object, prompt', () => {
    const diagnostics = loadModels('models.yml', `${models.trimEnd()}\n${qwen('grammar')}`).diagnostics.map(formatDiagnostic);
    expect(diagnostics).toEqual([expect.stringMatching(/^models\.yml:\d+:\d+: .*structured_output/)]);
  });

  it('carries an openai-compatible model’s structured_output to its model reference (absent: prompt)', () => {
    const catalog = loadModels('models.yml', `${models.trimEnd()}\n${qwen('json_object')}`).value;
    expect(catalog && findModel(catalog, 'qwen-coder')).toMatchObject({ provider: 'openai-compatible', structuredOutput: 'json_object' });
    expect(catalog && findModel(catalog, 'claude-sonnet')).not.toHaveProperty('structuredOutput');
  });
});

describe('Model routing: model: auto', () => {
  const auto = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: review
    agents:
      - agent: security
        model: auto
      - agent: documentation
        cache: false
`;

  it('resolves model: auto to the provider tiers of models.yml and keeps cache: false', () => {
    const wf = load(auto).value;
    const [security, docs] = agentPhases(wf ?? { phases: [] })[0]?.agents ?? [];
    expect(security?.auto ? Object.values(security.auto).map((m) => m.alias) : []).toEqual([
      'claude-haiku',
      'claude-sonnet',
      'claude-opus',
    ]);
    expect(security?.model.alias).toBe(security?.auto?.[security.complexity].alias);
    expect(docs).toMatchObject({ cache: false });
    expect(docs?.auto).toBeUndefined();
  });

  it('rejects model: auto for a provider without tiers', () => {
    const models = { ...catalog.models, tiers: {} };
    const r = loadWorkflow('workflows/test.yml', auto, { ...catalog, models });
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([expect.stringMatching(/:7:16: model "auto" needs tiers\.bedrock/)]);
  });
});

describe('Function: loadWorkflow (YAML syntax errors at their own position)', () => {
  const cases: Array<[string, string, string]> = [
    [
      'a line indented under a key that has a value',
      'name: T\ntrigger:\n  event: manual\n    run_by: [U1AAA]\n',
      '4:5: this line is indented further than the line above, which has a value already',
    ],
    ['a mapping item out of line with its siblings', 'name: T\nphases:\n  - name: a\n    agents: [x]\n      parallel: true\n', '5:7: '],
    [
      'an unclosed double quote',
      'name: T\ndescription: "Reviews\ntrigger: { event: manual }\n',
      '2:14: the quoted string starting here is never closed',
    ],
    [
      'an unclosed single quote',
      "name: T\ntrigger:\n  event: 'manual\n",
      "3:10: the quoted string starting here is never closed: add the closing '",
    ],
    [
      'an unclosed flow sequence',
      'name: T\ntrigger:\n  event: [pull_request.opened, manual\nphases: []\n',
      '3:10: the [ here is never closed',
    ],
    ['a tab as indentation', 'name: T\ntrigger:\n\tevent: manual\n', '3:1: Tabs are not allowed as indentation'],
    ['a duplicate key', 'name: T\ntrigger:\n  event: manual\n  event: pull_request\n', '4:3: Map keys must be unique'],
  ];
  it.each(cases)('reports %s at its line and column', (_name, text, expected) => {
    const prefix = `workflows/test.yml:${expected}`;
    const [first, ...rest] = errors(text);
    expect(first?.slice(0, prefix.length)).toBe(prefix);
    expect(rest).toEqual([]);
  });
});

describe('Function: loadWorkflow (trigger events)', () => {
  const withEvent = (event: string) => valid.replace('trigger: { event: pull_request.opened }', `trigger:\n  event: ${event}`);

  it('refuses an unknown action at its list item, naming the actions GitHub sends', () => {
    expect(errors(withEvent('[pull_request.opened, pull_request.opend]'))).toEqual([
      expect.stringMatching(
        /^workflows\/test\.yml:3:32: unknown action "opend" of pull_request \(known: assigned, auto_merge_disabled, .*ready_for_review.*unlocked\)$/,
      ),
    ]);
  });

  it('refuses an unknown event and a GitHub event that never starts a workflow', () => {
    expect(errors(withEvent('pull_reqest'))).toEqual([
      'workflows/test.yml:3:10: unknown event "pull_reqest" (known: pull_request, merge_request.<action>, change.opened, change.updated, change.ready, manual, request)',
    ]);
    expect(errors(withEvent('[manual, push, issue_comment.created]'))).toEqual([
      'workflows/test.yml:3:19: GitHub\'s "push" event never starts a workflow (AgentFlow is triggered by pull_request, merge_request.<action>, change.opened, change.updated, change.ready, manual, request)',
      'workflows/test.yml:3:25: GitHub\'s "issue_comment" event never starts a workflow (AgentFlow is triggered by pull_request, merge_request.<action>, change.opened, change.updated, change.ready, manual, request)',
    ]);
  });

  it("accepts GitLab's merge request actions and the forge-neutral change.opened / change.updated", () => {
    expect(errors(withEvent('[change.opened, change.updated, merge_request.open, merge_request.update, merge_request.merge]'))).toEqual([]);
  });

  it('refuses a misspelt GitLab action, an unknown change action and a bare merge_request, listing the known ones', () => {
    expect(errors(withEvent('[merge_request.opend, change.closed, merge_request]'))).toEqual([
      'workflows/test.yml:3:11: unknown action "opend" of merge_request (known: open, close, reopen, update, approved, unapproved, approval, unapproval, merge)',
      'workflows/test.yml:3:32: unknown action "closed" of change (known: opened, updated, ready)',
      'workflows/test.yml:3:47: "merge_request" needs an action: write merge_request.<action> (known: open, close, reopen, update, approved, unapproved, approval, unapproval, merge)',
    ]);
  });

  it("accepts every pull_request action of GitHub's webhook definitions, a bare pull_request and manual", () => {
    const actions = githubWebhookEvents().get('pull_request') ?? [];
    expect(actions).toEqual(expect.arrayContaining(['opened', 'synchronize', 'reopened', 'ready_for_review', 'labeled']));
    expect(errors(withEvent(`[${actions.map((a) => `pull_request.${a}`).join(', ')}, pull_request, manual]`))).toEqual([]);
  });

  it('adds ready_for_review to a workflow triggered by opened while drafts are skipped, and not when they are reviewed', () => {
    expect(load(valid).value?.trigger.events).toEqual(['pull_request.opened', 'pull_request.ready_for_review']);
    const drafts = withEvent('pull_request.opened\n  conditions: { skip_drafts: false }');
    expect(load(drafts).value?.trigger.events).toEqual(['pull_request.opened']);
  });

  it('adds change.ready to a change.opened workflow while drafts are skipped, and takes its filters', () => {
    const neutral = withEvent('[change.opened, change.updated]\n  conditions: { labels: { exclude: [wip] } }');
    const loaded = load(neutral);
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.value?.trigger.events).toEqual(['change.opened', 'change.updated', 'change.ready']);
  });
});

describe('Function: loadWorkflow (pull-request conditions)', () => {
  const withConditions = (conditions: string) =>
    valid.replace('trigger: { event: pull_request.opened }', `trigger:\n  event: pull_request.opened\n  conditions:\n${conditions}`);

  it('skips drafts and bots by default', () => {
    expect(load(valid).value?.trigger).toMatchObject({ skipDrafts: true, skipBots: true });
    expect(load(valid).value?.trigger.authors).toBeUndefined();
  });

  it('reads skip_drafts, skip_bots, authors, labels and branches', () => {
    const text = withConditions(`    skip_drafts: false
    skip_bots: false
    authors: { exclude: [renovate, "*-bot"] }
    labels: { include: [review-me], exclude: [wip] }
    branches: { include: [main, "release/**"] }
`);
    expect(errors(text)).toEqual([]);
    expect(load(text).value?.trigger).toMatchObject({
      skipDrafts: false,
      skipBots: false,
      authors: { include: [], exclude: ['renovate', '*-bot'] },
      labels: { include: ['review-me'], exclude: ['wip'] },
      branches: { include: ['main', 'release/**'], exclude: [] },
    });
  });

  it('refuses an invalid branch glob at its position', () => {
    expect(errors(withConditions('    branches: { exclude: ["release/[1-"] }\n'))).toEqual([
      'workflows/test.yml:5:27: branches.exclude.0: "release/[1-" has unbalanced brackets',
    ]);
  });

  it('refuses a filter with neither include nor exclude, an empty list and an unknown key', () => {
    expect(errors(withConditions('    labels: {}\n'))).toEqual([
      expect.stringMatching(/:5:13: trigger\.conditions\.labels: give include, exclude or both$/),
    ]);
    expect(errors(withConditions('    labels: { exclude: [] }\n'))[0]).toMatch(/:5:24: trigger\.conditions\.labels\.exclude: /);
    expect(errors(withConditions('    skip_authors: [renovate]\n'))).toEqual([
      expect.stringMatching(/:5:5: .*unknown field "skip_authors"/),
    ]);
  });

  it('refuses pull-request conditions on a workflow that only starts manually', () => {
    const text = valid.replace('trigger: { event: pull_request.opened }', 'trigger:\n  event: manual\n  conditions: { skip_bots: false }');
    expect(errors(text)).toEqual([
      'workflows/test.yml:4:17: skip_bots filters pull requests, but this workflow only starts manually: remove it or add a pull_request, merge_request or change event',
    ]);
  });
});

describe('Function: loadWorkflow (paths and agent files)', () => {
  it("resolves an agent's paths from the catalog's files, replaced by the entry's paths.include", () => {
    const text = `${valid.replace('agents: [code-review, security]', 'agents:\n      - security\n      - agent: documentation\n        paths: { include: ["docs/**"], exclude: ["docs/internal/**"] }\n      - agent: code-review\n        paths: { exclude: ["*Tests.swift"] }')}`;
    const [security, docs, review] = agentPhases(load(text).value ?? { phases: [] })[0]?.agents ?? [];
    expect(security?.paths.include).toEqual(expect.arrayContaining(['*.swift', 'AndroidManifest.xml', '*.entitlements', 'Podfile']));
    expect(security?.paths.exclude).toEqual([]);
    expect(docs?.paths).toEqual({ include: ['docs/**'], exclude: ['docs/internal/**'] });
    expect(review?.paths).toEqual({ include: catalog.agents.get('code-review')?.files, exclude: ['*Tests.swift'] });
  });

  it('reads the workflow paths and refuses an invalid glob in them or in an agent entry at its position', () => {
    const ok = `${valid}paths: { include: ["ios/**", "android/**"], exclude: ["**/Generated/**"] }\n`;
    expect(load(ok).value?.paths).toEqual({ include: ['ios/**', 'android/**'], exclude: ['**/Generated/**'] });
    expect(errors(`${valid}paths: { exclude: ["/ios/**"] }\n`)).toEqual([
      'workflows/test.yml:6:20: paths.exclude.0: "/ios/**" is absolute; globs match paths relative to the repository root',
    ]);
    const agent = valid.replace(
      'agents: [code-review, security]',
      'agents:\n      - agent: security\n        paths: { include: ["src/{a,b"] }',
    );
    expect(errors(agent)).toEqual(['workflows/test.yml:7:28: paths.include.0: "src/{a,b" has unbalanced brackets']);
  });

  it("refuses an invalid glob in an agent's files at its position", () => {
    const text = readFileSync(join(PROJECT_ROOT, 'workflows', 'agents', 'documentation.yml'), 'utf8').replace(
      'files: ["*.swift"',
      'files: ["../*.swift"',
    );
    expect(loadAgent('workflows/agents/documentation.yml', text).diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^workflows\/agents\/documentation\.yml:\d+:9: files\.0: "\.\.\/\*\.swift" leaves the repository/),
    ]);
  });

  it('ships agents that look at their own files: security at manifests and build files, documentation at docs', () => {
    expect(catalog.agents.get('security')?.files).toEqual(
      expect.arrayContaining(['AndroidManifest.xml', '*.plist', '*.gradle.kts', 'Package.swift']),
    );
    expect(catalog.agents.get('documentation')?.files).toEqual(expect.arrayContaining(['*.md', '*.swift', '*.kt']));
    expect(catalog.agents.get('code-review')?.files).not.toContain('*.md');
    expect(ws.workflows.get('pr-review')?.trigger.events).toContain('change.ready');
  });
});

describe('Function: loadWorkflow (max_tokens and the models’ max_output)', () => {
  it('refuses max_tokens over what the agent’s model or a fallback can write, at the line of max_tokens', () => {
    // gpt-4.1-mini writes at most 32,768 tokens (models.yml max_output).
    const text = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: review
    agents:
      - agent: test-coverage
        max_tokens: 40000
`;
    expect(errors(text)).toContainEqual(
      'workflows/test.yml:7:21: max_tokens 40000 of agent "test-coverage" is more than its model gpt-4.1-mini can write (max_output 32768 in models.yml)',
    );
  });

  it('accepts the shipped agents: each asks at most what its model and fallbacks can write', () => {
    expect(errors(valid)).toEqual([]);
  });
});

describe('Function: loadWorkflow (verify: the verifier pass)', () => {
  const lastPhase = (text: string) => {
    const r = load(text);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    return r.value?.phases.at(-1);
  };

  it('adds a last phase "verify" with the built-in verifier on the simple tier of the agents’ provider, after every phase', () => {
    const phase = lastPhase(`${valid}verify: true\n`);
    if (phase?.kind !== 'agents') throw new Error('expected the verifier phase');
    expect(phase.name).toBe('verify');
    expect(phase.dependsOn).toEqual(['review']);
    expect(phase.parallel).toBe(false);
    expect(phase.required).toBe(false);
    const [verifier] = phase.agents;
    expect(verifier?.name).toBe('verifier');
    expect(verifier?.output).toBe('verdicts');
    expect(verifier?.temperature).toBe(0);
    // code-review runs on Bedrock: the simple tier there is claude-haiku (models.yml tiers).
    expect(verifier?.model.alias).toBe('claude-haiku');
    expect(verifier?.verify).toEqual({ batch: 20, unconfirmed: 'drop' });
    // code-review falls back to OpenAI: so does the verifier, to OpenAI's simple tier.
    expect(verifier?.fallback.map((f) => f.alias)).toEqual(['gpt-4.1-nano']);
  });

  it('takes the model, fallbacks, batch size and action from verify: { … }', () => {
    const phase = lastPhase(`${valid}verify: { model: gpt-4.1-nano, fallback: [claude-haiku], batch: 5, unconfirmed: downgrade }\n`);
    if (phase?.kind !== 'agents') throw new Error('expected the verifier phase');
    const [verifier] = phase.agents;
    expect(verifier?.model.alias).toBe('gpt-4.1-nano');
    expect(verifier?.fallback.map((f) => f.alias)).toEqual(['claude-haiku']);
    expect(verifier?.verify).toEqual({ batch: 5, unconfirmed: 'downgrade' });
  });

  it('adds nothing with verify: false or without verify', () => {
    expect(load(`${valid}verify: false\n`).value?.phases.map((p) => p.name)).toEqual(['review']);
    expect(load(valid).value?.phases.map((p) => p.name)).toEqual(['review']);
  });

  it('refuses an unknown verifier model, a batch out of range and a phase named verify, with line:col', () => {
    expect(errors(`${valid}verify: { model: gpt-9 }\n`)).toEqual([
      'workflows/test.yml:6:18: unknown model "gpt-9" for the verifier (see workflows/models.yml)',
    ]);
    expect(errors(`${valid}verify: { batch: 500 }\n`)[0]).toMatch(/^workflows\/test\.yml:6:18: .*batch/);
    const named = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: verify
    agents: [code-review]
verify: true
`;
    expect(errors(named)).toEqual(['workflows/test.yml:4:11: phase name "verify" is the verifier\'s when verify is on; rename the phase']);
  });

  it('ships pr-review with the verifier on', () => {
    const wf = ws.workflows.get('pr-review');
    expect(wf?.phases.map((p) => p.name)).toEqual(['review', 'verify']);
  });
});

describe('Function: loadWorkflow (inline review and check run settings)', () => {
  it('reads max_inline_comments, inline_min_severity and fail_on with their defaults', () => {
    expect(load(valid).value?.output).toMatchObject({ inline: { maxComments: 20, minSeverity: 'low' }, failOn: 'critical' });
    const set = load(`${valid}output: { max_inline_comments: 5, inline_min_severity: high, fail_on: none }\n`).value?.output;
    expect(set).toMatchObject({ inline: { maxComments: 5, minSeverity: 'high' }, failOn: 'none' });
  });

  it('refuses them with line:col on a workflow that posts nothing on the pull request', () => {
    expect(errors(`${valid}output: { github_review: false, fail_on: high }\n`)).toEqual([
      'workflows/test.yml:6:42: output.fail_on does nothing with review: false (no review, comment or check run is posted)',
    ]);
  });
});

describe('Function: loadWorkflow (the output block: every setting does something)', () => {
  it('reads code_scanning and slack into the model (slack: true and slack_notification: the default channel)', () => {
    expect(load(`${valid}output: { code_scanning: true, slack: "#mobile-reviews" }\n`).value?.output).toMatchObject({
      codeScanning: true,
      slack: '#mobile-reviews',
    });
    expect(load(`${valid}output: { slack: true }\n`).value?.output.slack).toBe('default');
    expect(load(`${valid}output: [{ slack_notification: true }]\n`).value?.output.slack).toBe('default');
    expect(load(valid).value?.output).toMatchObject({ codeScanning: false });
    expect(load(valid).value?.output.slack).toBeUndefined();
  });

  it('refuses code_scanning on a workflow without a security agent, at its line:col', () => {
    const noSecurity = valid.replace('[code-review, security]', '[code-review]');
    expect(errors(`${noSecurity}output: { code_scanning: true }\n`)).toEqual([
      'workflows/test.yml:6:26: output.code_scanning uploads the findings of security agents (categories: [security]) and this workflow has none: add one (e.g. security) or remove it',
    ]);
  });

  it('refuses code_scanning on a workflow only GitLab merge requests start (GitLab takes no SARIF upload)', () => {
    const gitlabOnly = valid.replace('trigger: { event: pull_request.opened }', 'trigger: { event: merge_request.open }');
    expect(errors(`${gitlabOnly}output: { code_scanning: true }\n`)).toEqual([
      'workflows/test.yml:6:26: output.code_scanning uploads to GitHub code scanning, and this workflow only starts on GitLab merge requests (GitLab takes SARIF only as a CI job artifact): remove it',
    ]);
    const both = valid.replace('trigger: { event: pull_request.opened }', 'trigger: { event: [change.opened] }');
    expect(errors(`${both}output: { code_scanning: true }\n`)).toEqual([]);
  });

  it('refuses both spellings of one setting (the older one would do nothing)', () => {
    expect(errors(`${valid}output: { github_review: true, github_comment: false }\n`)).toEqual([
      'workflows/test.yml:6:48: output.github_comment is the older form of output.github_review: give only one of them',
    ]);
    expect(errors(`${valid}output:\n  - slack: "#a"\n  - slack_notification: true\n`)).toEqual([
      'workflows/test.yml:8:25: output.slack_notification is the older form of output.slack: give only one of them',
    ]);
  });

  it('refuses a key given twice in the list shape, at the second', () => {
    expect(errors(`${valid}output:\n  - database_log: true\n  - database_log: false\n`)).toEqual([
      'workflows/test.yml:8:19: output.database_log is given twice; keep one',
    ]);
  });

  it('takes review as the forge-neutral name of github_review and refuses both together', () => {
    expect(errors(`${valid}output: { review: true, github_review: true }\n`)).toEqual([
      'workflows/test.yml:6:40: output.github_review is the older form of output.review: give only one of them',
    ]);
    expect(errors(`${valid}output: { github_review: false }\n`)).toEqual([]);
  });

  it('refuses format with github_review: false (there is no comment to format)', () => {
    expect(errors(`${valid}output: { github_review: false, format: markdown }\n`)).toEqual([
      'workflows/test.yml:6:41: output.format does nothing with review: false (no review, comment or check run is posted)',
    ]);
  });

  it('refuses an empty slack channel', () => {
    expect(errors(`${valid}output: { slack: "" }\n`)).toEqual([expect.stringMatching(/^workflows\/test\.yml:6:\d+: /)]);
  });
});

describe('Function: loadWorkflow (output.create_files: generated tests become commits)', () => {
  const tests = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: generation
    agents: [test-generation]
  - name: execution
    depends_on: [generation]
    ci: { timeout: 2h }
`;

  it('reads create_files: true as the mobile test folders, a draft pull request (no push to the PR branch)', () => {
    expect(load(`${tests}output: { create_files: true }\n`).value?.output.createFiles).toEqual({
      paths: [...DEFAULT_TEST_PATHS],
      pushToPullRequest: false,
    });
    expect(load(`${tests}output: { create_files: { paths: ["Tests/**"], push_to_pr: true } }\n`).value?.output.createFiles).toEqual({
      paths: ['Tests/**'],
      pushToPullRequest: true,
    });
    expect(load(`${tests}output: { create_files: false }\n`).value?.output.createFiles).toBeUndefined();
  });

  it('refuses a test-folder glob that is absolute or leaves the repository, at its line:col', () => {
    expect(errors(`${tests}output:\n  create_files:\n    paths: ["/abs/**", "../up/**"]\n`)).toEqual([
      'workflows/test.yml:11:13: output.create_files.paths: "/abs/**" is absolute; globs match paths relative to the repository root',
      'workflows/test.yml:11:24: output.create_files.paths: "../up/**" leaves the repository ("..")',
    ]);
  });

  it('refuses create_files on a workflow whose agents write no files, and a ci gate that would wait before the commit', () => {
    expect(errors(`${valid}output: { create_files: true }\n`)).toEqual([
      'workflows/test.yml:6:25: output.create_files commits the files of agents with output: tests and this workflow has none: give the test-writing agent output: tests in its catalog file, or remove create_files',
    ]);
    const early = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: execution
    ci: { timeout: 2h }
  - name: generation
    depends_on: [execution]
    agents: [test-generation]
output: { create_files: true }
`;
    expect(errors(early)).toEqual([
      'workflows/test.yml:9:25: output.create_files: ci phase "execution" would wait before the tests are committed; make it depend on generation',
    ]);
  });

  it('refuses create_files settings of the wrong shape', () => {
    expect(errors(`${tests}output: { create_files: { push_to_pr: "yes" } }\n`)).toEqual([
      expect.stringMatching(/^workflows\/test\.yml:\d+:\d+: /),
    ]);
    expect(errors(`${tests}output: { create_files: { paths: [] } }\n`)).toEqual([expect.stringMatching(/^workflows\/test\.yml:\d+:\d+: /)]);
  });
});
