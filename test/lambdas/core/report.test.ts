import { describe, expect, it } from 'vitest';
import type { AgentResult, Change, Finding } from '../../../lambdas/core/contracts.js';
import { cellText, FIELD_CAPS, mergeFindings, renderComment, summarize } from '../../../lambdas/core/report.js';

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

function render(findings: readonly Finding[], agents: AgentResult[] = [agent('security', { findings: findings.length })]): string {
  const merged = mergeFindings([{ agent: 'security', findings }]);
  return renderComment({
    workflowName: 'PR review',
    workflow: 'pr-review',
    change,
    runId: 'r1',
    findings: merged,
    summary: summarize('pr-review', agents, merged),
  });
}

/** The rows of the findings table (header and delimiter row included). */
function findingsTable(md: string): string[] {
  const lines = md.split('\n');
  const start = lines.indexOf('| Severity | Location | Category | Finding | Agents |');
  const rows: string[] = [];
  for (let i = start; i < lines.length && lines[i]?.startsWith('|'); i++) rows.push(lines[i] as string);
  return rows;
}

const unescapedPipes = (row: string) => row.match(/(?<!\\)\|/g)?.length ?? 0;
/** The text outside code spans (a code span renders nothing live). */
const outsideCode = (md: string) => md.replace(/(?<!`)(`+)(?!`)([^\n]*?[^`\n])\1(?!`)/g, ' ');

describe('Function: renderComment', () => {
  it('refuses to let pipes, carriage returns or newlines add rows or cells to the findings table', () => {
    // Act
    const md = render(CORPUS);

    // Assess
    const table = findingsTable(md);
    expect(table).toHaveLength(2 + CORPUS.length);
    for (const row of table) {
      expect(row.startsWith('| ') || row === '|---|---|---|---|---|').toBe(true);
      expect(unescapedPipes(row)).toBe(6);
    }
    expect(md).not.toContain('\r');
    expect(table.find((r) => r.includes('line one'))).toContain('line one<br>line two<br>three<br>four<br>**Fix:** carriage<br>return |');
  });

  it('refuses raw HTML from a finding: tags are shown as text', () => {
    // Act
    const md = render(CORPUS);

    // Assess
    expect(outsideCode(md)).not.toMatch(/<(img|script|details open|\/td|\/tr|\/table|https?:)/i);
    expect(md).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });

  it('refuses images and links to anywhere: no ![, no ](, no bare URL outside a code span', () => {
    // Act
    const md = render(CORPUS);
    const table = findingsTable(md).join('\n');

    // Assess
    expect(table).not.toContain('![');
    expect(table).not.toMatch(/\]\(|\]\[/);
    expect(table).not.toContain('[Apply fix]');
    expect(outsideCode(table)).not.toMatch(/:\/\/|www\./);
    expect(table).toContain('`https://evil.example/steal?x=1`');
  });

  it('refuses @ mentions of teams and users, e-mail autolinks and #123 references', () => {
    // Act
    const table = findingsTable(render(CORPUS)).join('\n');

    // Assess
    expect(outsideCode(table)).not.toMatch(/@[\w-]/);
    expect(table).toContain('@\u200borg/team');
    expect(table).toContain('admin@\u200bacme.example');
    expect(outsideCode(table)).not.toMatch(/(?<!&)#\d/);
    expect(table).toContain('see #\u200b12 and other/repo#\u200b3');
  });

  it('refuses code-span break-outs: a path with backticks stays one code span, a well-formed span in a message stays code', () => {
    // Act
    const table = findingsTable(render(CORPUS));

    // Assess
    const pathRow = table.find((r) => r.includes('file with backticks')) ?? '';
    expect(pathRow).toContain('| `` App/`evil`\\|x.swift:9 `` |');
    const backslashRow = table.find((r) => r.includes('backslash before a pipe in a path')) ?? '';
    expect(backslashRow).toContain('| App/a&#92;&#124;b.swift:17 |');
    const spanRow = table.find((r) => r.includes('code span break-out')) ?? '';
    expect(spanRow).toContain('`` ` <img src=x> ``');
    expect(spanRow).toContain('`\\|`');
    expect(spanRow).toContain('&#96; unclosed &#91;a&#93;(`http://x`)');
    expect(render([finding({ message: '`!!` throws on null' })])).toContain('| `!!` throws on null<br>**Fix:** Fix it |');
  });

  it('refuses a path with a backslash-pipe that adds lines, headings or live links: the row stays one row', () => {
    // Prepare
    const evil = finding({ file: 'a\\|b\n| injected |\n\n# Heading [x](https://evil)', message: 'path injection' });

    // Act
    const md = render([evil, finding({ message: 'see `https://evil.example/login \\| now`' })]);

    // Assess
    const table = findingsTable(md);
    expect(table).toHaveLength(4);
    for (const row of table) {
      expect(row.startsWith('| ') || row === '|---|---|---|---|---|').toBe(true);
      expect(unescapedPipes(row)).toBe(6);
    }
    expect(md).not.toMatch(/^#+ Heading/m);
    expect(md).not.toMatch(/^\| injected/m);
    expect(md).not.toContain('](http');
    expect(outsideCode(md)).not.toContain('https://');
    expect(table[2]).toContain('| a&#92;&#124;b &#124; injected &#124;  # Heading &#91;x&#93;(`https://evil):10` |');
    expect(table[3]).toContain('`https://evil.example/login` &#92;&#124; now');
  });

  it('refuses forged emphasis and rows in a category: **APPROVED** is shown as text', () => {
    // Act
    const table = findingsTable(render(CORPUS));

    // Assess
    const row = table.find((r) => r.includes('APPROVED')) ?? '';
    expect(row).toContain('security &#124; APPROVED<br>&#124; 🔴 critical &#124;');
    expect(row).toContain('&#42;&#42;APPROVED&#42;&#42; &#95;LGTM&#95; &#126;&#126;none&#126;&#126;');
    expect(row).not.toContain('**APPROVED**');
  });

  it('refuses fields over their caps: message, suggestion and file end in …', () => {
    // Prepare
    const long = finding({ file: `${'d/'.repeat(400)}x.swift`, message: 'm'.repeat(5000), suggestion: 's'.repeat(5000) });

    // Act
    const row = findingsTable(render([long]))[2] ?? '';

    // Assess
    expect(row).toContain(`${'m'.repeat(FIELD_CAPS.message - 1)}…<br>`);
    expect(row).not.toContain('m'.repeat(FIELD_CAPS.message));
    expect(row).toContain(`${'s'.repeat(FIELD_CAPS.suggestion - 1)}…`);
    expect(row).not.toContain('s'.repeat(FIELD_CAPS.suggestion));
    expect(row).toContain('…:10`');
    expect(FIELD_CAPS).toMatchObject({ message: 1000, suggestion: 2000, file: 300 });
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
