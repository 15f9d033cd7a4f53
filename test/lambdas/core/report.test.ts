import { describe, expect, it } from 'vitest';
import type { AgentResult, Change, Finding, RunSummary } from '../../../lambdas/core/contracts.js';
import {
  cellText,
  FIELD_CAPS,
  findingUrl,
  MAX_COMMENT_CHARS,
  mergeFindings,
  renderComment,
  summarize,
  TOP_FINDINGS,
} from '../../../lambdas/core/report.js';

const change: Change = {
  repository: 'acme/shop-apps',
  number: 42,
  title: 'Checkout',
  author: 'mobile-dev',
  url: '',
  action: 'opened',
  baseSha: 'a'.repeat(40),
  headSha: 'b1234567',
  baseRef: 'main',
  headRef: 'feature',
};

const agent = (name: string, over: Partial<AgentResult> = {}): AgentResult => ({
  name,
  phase: 'review',
  status: 'succeeded',
  provider: 'openai',
  model: 'gpt-4.1-mini',
  inputTokens: 1000,
  outputTokens: 200,
  cachedTokens: 0,
  costUsd: 0.001,
  findings: 0,
  chunks: 1,
  repaired: false,
  durationMs: 5,
  calls: 1,
  cacheHits: 0,
  fallbackUsed: false,
  attempts: [],
  filesReviewed: 1,
  filesNotReviewed: 0,
  repairs: 0,
  truncated: 0,
  rawAnswers: [],
  toolCalls: 0,
  toolErrors: 0,
  iterations: 0,
  ...over,
});

const finding = (over: Partial<Finding>): Finding => ({
  file: 'App/Pay.swift',
  line: 10,
  severity: 'high',
  category: 'security',
  message: 'Problem',
  suggestion: 'Fix it',
  ...over,
});

/** The injection corpus: what a model (steered by a pull request) may write into a finding. */
const CORPUS: Finding[] = [
  finding({ message: 'pipe | in a cell \\| and a backslash-pipe', suggestion: 'a || b' }),
  finding({ message: 'line one\r\nline two\rthree\nfour', suggestion: 'carriage\rreturn' }),
  finding({ message: '<img src=x onerror=alert(1)><script>alert(1)</script><details open>', suggestion: '</td></tr></table>' }),
  finding({ message: 'tracked ![](http://tracker.example/p.gif) and ![alt][ref]', suggestion: '![x](https://evil.example/i.png)' }),
  finding({
    message: '[Apply fix](https://evil.example) or https://evil.example/steal?x=1 or www.evil.example',
    suggestion: '<https://evil.example>',
  }),
  finding({ message: 'ping @org/team and @octocat, mail admin@acme.example, see #12 and other/repo#3', suggestion: 'cc @acme/security' }),
  finding({ file: 'App/`evil`|x.swift', line: 3, message: 'file with backticks and a pipe' }),
  finding({ file: 'App/a\\|b.swift', message: 'backslash before a pipe in a path' }),
  finding({ message: 'code span break-out `` ` <img src=x> `` then `|` and ` unclosed [a](http://x)', suggestion: '```` fence' }),
  finding({ category: 'security | APPROVED\n| 🔴 critical |', message: '**APPROVED** _LGTM_ ~~none~~' }),
].map((f, i) => ({ ...f, line: f.line + i })); // one line each: merging keeps them apart

function render(
  findings: readonly Finding[],
  agents: AgentResult[] = [agent('security', { findings: findings.length })],
  over: { change?: Change; excluded?: ReadonlyArray<{ path: string; reason: string }> } = {},
): string {
  const merged = mergeFindings([{ agent: 'security', findings }]);
  return renderComment({
    workflowName: 'PR review',
    workflow: 'pr-review',
    change: over.change ?? change,
    runId: 'r1',
    findings: merged,
    summary: summarize('pr-review', agents, merged, {}, { excluded: over.excluded }),
    excluded: over.excluded,
  });
}

/** The list items of the "Top findings" section. */
function topFindings(md: string): string[] {
  const lines = md.split('\n');
  const start = lines.indexOf('### Top findings');
  if (start < 0) return [];
  const items: string[] = [];
  for (let i = start + 2; i < lines.length && lines[i]?.startsWith('- '); i++) items.push(lines[i] as string);
  return items;
}

/** The links the comment makes itself: to the reviewed repository's head commit, nowhere else. */
const OWN_LINK = /\]\(https:\/\/github\.com\/acme\/shop-apps\/blob\/b1234567\/[^\s()<>]*\)/g;
/** `md` with its own links reduced to their text. */
const withoutOwnLinks = (md: string) => md.replace(OWN_LINK, ']');
/** The lines outside `<details>` blocks. */
function outsideDetails(md: string): string[] {
  let depth = 0;
  return md.split('\n').filter((l) => {
    if (l.startsWith('<details>')) depth++;
    const outside = depth === 0;
    if (l === '</details>') depth--;
    return outside;
  });
}

const unescapedPipes = (row: string) => row.match(/(?<!\\)\|/g)?.length ?? 0;
/** The text outside code spans (a code span renders nothing live). */
const outsideCode = (md: string) => md.replace(/(?<!`)(`+)(?!`)([^\n]*?[^`\n])\1(?!`)/g, ' ');

describe('Function: renderComment', () => {
  it('refuses to let pipes, carriage returns or newlines add lines or table rows to the top findings', () => {
    // Act
    const md = render(CORPUS);

    // Assess
    const items = topFindings(md);
    expect(items).toHaveLength(CORPUS.length);
    for (const item of items) expect(item).toMatch(/^- [🔴🟠🟡🔵⚪] \*\*(critical|high|medium|low|info)\*\* · /u);
    expect(outsideDetails(md).filter((l) => l.startsWith('|'))).toEqual([]);
    expect(md).not.toContain('\r');
    expect(items.find((r) => r.includes('line one'))).toContain('— line one line two three four ([');
    expect(md).not.toContain('Fix:');
  });

  it('refuses raw HTML from a finding: tags are shown as text', () => {
    // Act
    const md = render(CORPUS);

    // Assess
    expect(outsideCode(md)).not.toMatch(/<(img|script|details open|\/td|\/tr|\/table|https?:)/i);
    expect(md).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });

  it('refuses images and links to anywhere but the lines of the change: no ![, no other ](, no bare URL outside a code span', () => {
    // Act
    const items = topFindings(render(CORPUS)).join('\n');

    // Assess
    expect(items.match(OWN_LINK)).toHaveLength(CORPUS.length);
    const rest = withoutOwnLinks(items);
    expect(rest).not.toContain('![');
    expect(rest).not.toMatch(/\]\(|\]\[/);
    expect(rest).not.toContain('[Apply fix]');
    expect(outsideCode(rest)).not.toMatch(/:\/\/|www\./);
    expect(rest).toContain('`https://evil.example/steal?x=1`');
  });

  it('refuses @ mentions of teams and users, e-mail autolinks and #123 references', () => {
    // Act
    const items = withoutOwnLinks(topFindings(render(CORPUS)).join('\n'));

    // Assess
    expect(outsideCode(items)).not.toMatch(/@[\w-]/);
    expect(items).toContain('@\u200borg/team');
    expect(items).toContain('admin@\u200bacme.example');
    expect(outsideCode(items)).not.toMatch(/(?<!&)#\d/);
    expect(items).toContain('see #\u200b12 and other/repo#\u200b3');
  });

  it('refuses GitLab\'s references in model text: !12, ~bug, %"v1", $3, &5 and ^alert#6 do not resolve', () => {
    const text = cellText('fixes !12, labels ~bug ~"needs review", milestone %"v1", snippet $3, epic &5, alert ^alert#6');
    for (const ref of ['!12', '~bug', '~"needs', '%"v1"', '$3', '&5', '#6']) expect(text).not.toContain(ref);
    expect(text).toContain('!\u200b12');
    expect(text).toContain('&#126;\u200bbug');
    expect(text).toContain('&amp;\u200b5');
    // Plain prices and percentages stay as they are.
    expect(cellText('costs $ 5 or 50 % more!')).toBe('costs $ 5 or 50 % more!');
    expect(cellText('$HOME, !important, x^2')).toBe('$HOME, !important, x^2');
    expect(cellText('R&D')).toBe('R&amp;D');
  });

  it('refuses code-span break-outs: a path with backticks stays one code span, a well-formed span in a message stays code', () => {
    // Act
    const items = topFindings(render(CORPUS));

    // Assess
    const pathItem = items.find((r) => r.includes('file with backticks')) ?? '';
    expect(pathItem).toContain(
      '([`` App/`evil`|x.swift:9 ``](https://github.com/acme/shop-apps/blob/b1234567/App/%60evil%60%7Cx.swift#L9))',
    );
    const backslashItem = items.find((r) => r.includes('backslash before a pipe in a path')) ?? '';
    expect(backslashItem).toContain('([`App/a\\|b.swift:17`](https://github.com/acme/shop-apps/blob/b1234567/App/a%5C%7Cb.swift#L17))');
    const spanItem = items.find((r) => r.includes('code span break-out')) ?? '';
    expect(spanItem).toContain('`` ` <img src=x> ``');
    expect(spanItem).toContain('then `|` and');
    expect(spanItem).toContain('&#96; unclosed &#91;a&#93;(`http://x`)');
    expect(topFindings(render([finding({ message: '`!!` throws on null' })]))).toEqual([
      '- 🟠 **high** · security — `!!` throws on null ([`App/Pay.swift:10`](https://github.com/acme/shop-apps/blob/b1234567/App/Pay.swift#L10))',
    ]);
  });

  it('refuses a path with a backslash-pipe that adds lines, headings or live links: the item stays one line', () => {
    // Prepare
    const evil = finding({ file: 'a\\|b\n| injected |\n\n# Heading [x](https://evil)', message: 'path injection' });

    // Act
    const md = render([evil, finding({ message: 'see `https://evil.example/login \\| now`' })]);

    // Assess
    const items = topFindings(md);
    expect(items).toHaveLength(2);
    expect(md).not.toMatch(/^#+ Heading/m);
    expect(md).not.toMatch(/^\| injected/m);
    expect(outsideCode(withoutOwnLinks(md))).not.toContain('](');
    expect(outsideCode(withoutOwnLinks(md))).not.toContain('https://');
    // An empty path segment (`//`) would leave the commit: the location is shown without a link.
    expect(items[0]).toBe('- 🟠 **high** · security — path injection (`a\\|b | injected |  # Heading [x](https://evil):10`)');
    expect(items[1]).toContain('`https://evil.example/login \\| now`');
  });

  it('refuses forged emphasis and rows in a category: **APPROVED** is shown as text', () => {
    // Act
    const items = topFindings(render(CORPUS));

    // Assess
    const item = items.find((r) => r.includes('APPROVED')) ?? '';
    expect(item).toContain('· security &#124; APPROVED &#124; 🔴 critical &#124; —');
    expect(item).toContain('&#42;&#42;APPROVED&#42;&#42; &#95;LGTM&#95; &#126;&#126;\u200bnone&#126;&#126;');
    expect(item).not.toContain('**APPROVED**');
  });

  it('refuses fields over their caps: the message ends in … at 300 characters, the file at its cap, and the fix is left to the inline comment', () => {
    // Prepare
    const long = finding({ file: `${'d/'.repeat(400)}x.swift`, message: 'm'.repeat(5000), suggestion: 's'.repeat(5000) });

    // Act
    const md = render([long]);
    const item = topFindings(md)[0] ?? '';

    // Assess
    expect(item).toContain(` — ${'m'.repeat(299)}… (`);
    expect(item).not.toContain('m'.repeat(300));
    expect(md).not.toContain('s'.repeat(50));
    expect(item).toContain('…:10`](https://github.com/');
    expect(FIELD_CAPS).toMatchObject({ message: 1000, suggestion: 2000, file: 300 });
  });

  it('stays under MAX_COMMENT_CHARS with thousands of long excluded paths, and counts the paths it left out', () => {
    // Prepare
    const excluded = Array.from({ length: 3000 }, (_, i) => ({ path: `${'p'.repeat(290)}/${i}.png`, reason: 'binary' }));

    // Act
    const md = render([finding({})], undefined, { excluded });

    // Assess
    expect(md.length).toBeLessThan(MAX_COMMENT_CHARS);
    expect(topFindings(md)).toHaveLength(1);
    expect(md).toMatch(/^- … \d+ more in the full report$/m);
    expect(md).toContain('| **Total** |');
  });

  it('refuses links, HTML and line breaks in failed agents’ errors, which quote model output', () => {
    // Prepare
    const failed = agent('code-review', {
      status: 'failed',
      error: {
        Error: 'InvalidAnswerError',
        Cause: JSON.stringify({ errorMessage: 'answer was <img src=x> [click](https://evil.example)\n| forged | row |' }),
      },
    });

    // Act
    const md = render([], [agent('security'), failed]);

    // Assess
    const row = md.split('\n').find((l) => l.startsWith('| code-review |')) ?? '';
    expect(row).toContain('❌ failed: InvalidAnswerError');
    expect(row).not.toMatch(/<img|\]\(|\n/);
    expect(unescapedPipes(row)).toBe(9);
    expect(md).not.toMatch(/^\| forged/m);
    const status = md.split('\n').find((l) => l.startsWith('**⚠️ PARTIAL**')) ?? '';
    expect(status).not.toMatch(/<img|\]\(/);
  });
});

describe('Function: renderComment, the short summary', () => {
  it('the summary links each top finding to its lines at the head SHA', () => {
    // Prepare
    const findings = [
      finding({ severity: 'critical', line: 10, endLine: 12, message: 'Secret in code' }),
      finding({ file: 'App/Cart.swift', line: 5, severity: 'medium', category: 'correctness', message: 'Force unwrap' }),
      finding({ file: 'README.md', line: 0, severity: 'info', category: 'documentation', message: 'No usage section' }),
    ];

    // Act
    const items = topFindings(render(findings));

    // Assess
    expect(items).toEqual([
      '- 🔴 **critical** · security — Secret in code ([`App/Pay.swift:10-12`](https://github.com/acme/shop-apps/blob/b1234567/App/Pay.swift#L10-L12))',
      '- 🟡 **medium** · correctness — Force unwrap ([`App/Cart.swift:5`](https://github.com/acme/shop-apps/blob/b1234567/App/Cart.swift#L5))',
      '- ⚪ **info** · documentation — No usage section ([`README.md`](https://github.com/acme/shop-apps/blob/b1234567/README.md))',
    ]);
    expect(findingUrl(change, { file: 'a.swift', line: 7, endLine: 7 })).toBe('https://github.com/acme/shop-apps/blob/b1234567/a.swift#L7');
  });

  it('a path with parentheses, spaces or brackets cannot break the link', () => {
    // Prepare
    const file = "App/Pay (v2) [old]/x)](javascript:alert(1)) !*'#?.swift";

    // Act
    const items = topFindings(render([finding({ file, line: 3 })]));

    // Assess
    const m = /\(\[`([^`]+)`\]\((https:\/\/[^\s()]+)\)\)$/.exec(items[0] ?? '');
    expect(m?.[1]).toBe(`${file}:3`);
    expect(m?.[2]).toBe(
      'https://github.com/acme/shop-apps/blob/b1234567/App/Pay%20%28v2%29%20%5Bold%5D/x%29%5D%28javascript%3Aalert%281%29%29%20%21%2A%27%23%3F.swift#L3',
    );
    const url = new URL(m?.[2] ?? '');
    expect(url.origin).toBe('https://github.com');
    expect(decodeURIComponent(url.pathname)).toBe(`/acme/shop-apps/blob/b1234567/${file}`);
    expect(url.hash).toBe('#L3');
    // `.`, `..` and empty segments would resolve out of the commit: no link then.
    expect(findingUrl(change, { file: 'App//https://evil.example', line: 1 })).toBeUndefined();
    expect(findingUrl(change, { file: 'App/../../../evil/x.swift', line: 1 })).toBeUndefined();
    expect(findingUrl({ ...change, repository: 'acme/shop](https://evil.example)' }, { file: 'a.swift', line: 1 })).toBeUndefined();
  });

  it('the agents table is collapsed', () => {
    // Act
    const md = render(
      [finding({})],
      [agent('security', { findings: 1 }), agent('code-review', { provider: 'bedrock', model: 'claude-sonnet' })],
    );

    // Assess
    const lines = md.split('\n');
    const open = lines.indexOf('<details><summary>Agents, tokens and cost</summary>');
    expect(open).toBeGreaterThan(0);
    expect(lines.slice(open + 1, open + 4)).toEqual([
      '',
      '| Agent | Status | Provider | Model | Input tokens | Output tokens | Cost (USD) | Gateway |',
      '|---|---|---|---|---:|---:|---:|---|',
    ]);
    expect(lines[open + 4]).toBe('| security | ✅ succeeded | openai | gpt-4.1-mini | 1,000 | 200 | $0.0010 |  |');
    expect(lines[open + 6]).toBe('| **Total** | | | | **2,000** | **400** | **$0.0020** | |');
    expect(lines.slice(open + 7, open + 9)).toEqual(['', '</details>']);
    expect(outsideDetails(md).filter((l) => l.startsWith('|'))).toEqual([]);
    expect(md).toContain('**1 finding** (🟠 1 high) from 2 agents · 2,400 tokens · 2 model calls · $0.0020');
  });

  it('at most TOP_FINDINGS findings are listed, the rest are counted', () => {
    // Prepare
    const findings = Array.from({ length: TOP_FINDINGS + 3 }, (_, i) =>
      finding({ line: i + 1, severity: i === TOP_FINDINGS + 2 ? 'critical' : 'low', message: `Problem ${i + 1}` }),
    );

    // Act
    const md = render(findings);

    // Assess
    const items = topFindings(md);
    expect(TOP_FINDINGS).toBe(10);
    expect(items).toHaveLength(TOP_FINDINGS);
    expect(items[0]).toContain(`🔴 **critical** · security — Problem ${TOP_FINDINGS + 3} (`);
    expect(items.slice(1).every((i) => i.startsWith('- 🔵 **low**'))).toBe(true);
    expect(md).toContain('\n_3 more findings below, on the changed lines in the inline review and in the full report (run r1)._\n');
    // The rest are on the pull request too, collapsed.
    expect(md).toContain('<details><summary>3 more findings</summary>');
    expect(md).toContain('Problem 12');
    expect(md).toContain(`**${TOP_FINDINGS + 3} findings** (🔴 1 critical · 🔵 ${TOP_FINDINGS + 2} low)`);
    expect(render([])).not.toContain('### Top findings');
  });

  it('a run without a pull request shows locations without links', () => {
    // Prepare
    const local: Change = { ...change, number: 0, repository: 'local' };

    // Act
    const md = render([finding({ line: 10, endLine: 11 }), finding({ file: 'README.md', line: 0, category: 'docs' })], undefined, {
      change: local,
    });

    // Assess
    expect(topFindings(md)).toEqual([
      '- 🟠 **high** · security — Problem (`App/Pay.swift:10-11`)',
      '- 🟠 **high** · docs — Problem (`README.md`)',
    ]);
    expect(md).not.toContain('](');
    expect(findingUrl({ ...change, number: 0 }, { file: 'a.swift', line: 1 })).toBeUndefined();
  });
});

describe('Function: renderComment outside the table', () => {
  it('shows a code span with a pipe in the status reason without a stray backslash', () => {
    // Prepare
    const failed = agent('code-review', {
      status: 'failed',
      error: { Error: 'InvalidAnswerError', Cause: JSON.stringify({ errorMessage: 'bad `a|b` answer' }) },
    });

    // Act
    const md = render([], [agent('security'), failed]);

    // Assess
    const status = md.split('\n').find((l) => l.startsWith('**⚠️ PARTIAL**')) ?? '';
    expect(status).toContain('`a|b`');
    expect(status).not.toContain('\\');
    const row = md.split('\n').find((l) => l.startsWith('| code-review |')) ?? '';
    expect(row).toContain('`a\\|b`');
  });
});

describe('Function: cellText', () => {
  it('refuses every live construct of the corpus in one cell', () => {
    // Act
    const cells = CORPUS.map((f) => cellText(`${f.message} ${f.suggestion}`));

    // Assess
    for (const c of cells) {
      expect(c).not.toMatch(/[\r\n]/);
      expect(outsideCode(c)).not.toMatch(/<(?!br>)/);
      expect(outsideCode(c)).not.toMatch(/!\[|\]\(|:\/\/|@\w|(?<!\\)\|/);
    }
  });

  it('keeps plain prose unchanged', () => {
    expect(cellText('Force unwrap can crash (use guard let).')).toBe('Force unwrap can crash (use guard let).');
  });
});

describe('Function: renderComment (generated tests)', () => {
  const withFiles = (files: NonNullable<RunSummary['files']>) =>
    renderComment({
      workflowName: 'Test generation',
      workflow: 'test-generation',
      change,
      runId: 'r1',
      findings: [],
      summary: { ...summarize('test-generation', [agent('test-generation')], [], {}, {}), files },
    });

  it('links the draft pull request the tests were committed to, lists the files and those refused', () => {
    const md = withFiles({
      sha: '4f9bbcbb8db836f8fcc13000bd5d5732ad826d01',
      branch: 'agentflow/tests/42-45491d2',
      url: 'https://github.com/acme/shop-apps/pull/43',
      pullRequest: 43,
      committed: ['AppTests/CartTests.swift'],
      refused: [{ path: 'App/Pay.swift', reason: 'not under the test folders' }],
    });
    expect(md).toContain('### Generated tests');
    expect(md).toMatch(/\[draft pull request #\u200b?43\]\(https:\/\/github\.com\/acme\/shop-apps\/pull\/43\)/);
    expect(md).toContain('`agentflow/tests/42-45491d2`');
    expect(md).toContain('- `AppTests/CartTests.swift`');
    expect(md).toMatch(/- `App\/Pay\.swift`: not under the test folders/);
  });

  it('does not make a link of a URL that could break out of the Markdown link', () => {
    const md = withFiles({
      sha: 'a'.repeat(40),
      branch: 'agentflow/tests/1-aaaaaaa',
      url: 'https://evil.example/x) [click](https://evil.example',
      committed: ['AppTests/A.swift'],
      refused: [],
    });
    // Shown as code, never as a link.
    expect(md).toContain('`https://evil.example/x) [click](https://evil.example`');
    expect(md).not.toMatch(/\]\(https:\/\/evil\.example\/x\)/);
  });

  it('says why nothing was committed', () => {
    expect(
      withFiles({ sha: 'a'.repeat(40), committed: [], refused: [], error: 'HttpError: Resource not accessible by integration' }),
    ).toContain('No test file was committed: HttpError: Resource not accessible by integration');
  });
});
