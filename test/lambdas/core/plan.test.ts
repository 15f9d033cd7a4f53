import { describe, expect, it } from 'vitest';
import { toMicro } from '../../../lambdas/core/budget.js';
import type { AgentItem, AgentPlan, ChangedFile, ModelRef } from '../../../lambdas/core/contracts.js';
import {
  answerTokens,
  attributesOf,
  buildPlan,
  defaultExclusion,
  parseGitAttributes,
  reviewOrder,
  shareMicro,
} from '../../../lambdas/core/plan.js';
import { countTokens, requestTokens } from '../../../lambdas/core/tokenizer.js';
import { layoutChunks } from '../../../lambdas/core/tokens.js';

const file = (path: string, lines = 3, extra: Partial<ChangedFile> = {}): ChangedFile => ({
  path,
  status: 'modified',
  additions: lines,
  deletions: 0,
  patch: `@@ -1,0 +1,${lines} @@\n${Array.from({ length: lines }, (_, i) => `+let v${i} = ${i}`).join('\n')}`,
  binary: false,
  ...extra,
});

const model = (alias: string, input: number, output: number): ModelRef => ({
  provider: 'bedrock',
  alias,
  modelId: `id-${alias}`,
  contextWindow: 200_000,
  price: { input, output, cacheRead: input / 10, cacheWrite: input * 1.25 },
});

const agent = (name: string, over: Partial<AgentItem> = {}): AgentItem => ({
  name,
  model: model('claude-sonnet', 3, 15),
  fallback: [],
  maxTokens: 4000,
  temperature: 0,
  categories: ['correctness'],
  tasks: [],
  prompt: 'Review the change.',
  cache: true,
  complexity: 'medium',
  output: 'findings',
  paths: { include: [], exclude: [] },
  tools: [],
  maxIterations: 8,
  timeLimitSeconds: 300,
  allowWrite: false,
  reads: [],
  ...over,
});

describe('Function: defaultExclusion', () => {
  it.each([
    ['ios/Shop/en.lproj/Localizable.strings', 'translation'],
    ['android/app/src/main/res/values-de/strings.xml', 'translation'],
    ['ios/Shop/Localizable.xcstrings', 'translation'],
    ['ios/Pods/Alamofire/Source/Session.swift', 'vendored'],
    ['Carthage/Checkouts/x/y.swift', 'vendored'],
    ['ios/Shop.xcodeproj/project.pbxproj', 'generated'],
    ['ios/Shop/Generated/Assets.generated.swift', 'generated'],
    ['ios/Podfile.lock', 'lock file'],
    ['MastodonSDK/Sources/MastodonLocalization/Generated/Strings.swift', 'generated'],
    ['ios/Shop.xcworkspace/xcshareddata/swiftpm/Package.resolved', 'lock file'],
    ['android/gradle.lockfile', 'lock file'],
    ['ios/ShopTests/__Snapshots__/CheckoutTests/testPay.1.png', 'snapshot'],
  ])('excludes %s as %s', (path, reason) => {
    expect(defaultExclusion(file(path))).toBe(reason);
  });

  it.each([
    'ios/Shop/Checkout/CheckoutViewModel.swift',
    'android/app/src/main/res/values/strings.xml',
    'android/app/build.gradle.kts',
    'ios/Shop/Info.plist',
  ])('reviews %s', (path) => {
    expect(defaultExclusion(file(path))).toBeUndefined();
  });

  it('excludes binaries, LFS pointers, submodules and removed files whatever their name', () => {
    expect(defaultExclusion(file('a.swift', 1, { binary: true, patch: '' }))).toBe('binary');
    const lfs = '@@ -0,0 +1,3 @@\n+version https://git-lfs.github.com/spec/v1\n+oid sha256:4d7a\n+size 12345';
    expect(defaultExclusion(file('Assets/video.mp4', 3, { patch: lfs }))).toBe('LFS pointer');
    expect(defaultExclusion(file('vendor/lib', 1, { patch: '@@ -1 +1 @@\n-Subproject commit 1234567\n+Subproject commit 89abcde' }))).toBe(
      'submodule',
    );
    expect(defaultExclusion(file('a.swift', 0, { status: 'removed' }))).toBe('removed');
  });

  it('excludes a file whose first lines say it is generated', () => {
    const patch =
      '@@ -0,0 +1,3 @@\n+// swiftlint:disable all\n+// Generated using SwiftGen — https://github.com/SwiftGen/SwiftGen\n+// DO NOT EDIT';
    expect(defaultExclusion(file('ios/Shop/Strings+Generated.swift', 3, { patch }))).toBe('generated');
  });

  it('follows .gitattributes either way: linguist-generated marks a file, -linguist-vendored keeps a vendored one', () => {
    const rules = parseGitAttributes(
      '# comment\n*.pb.kt linguist-generated=true\nPods/** -linguist-vendored\napi/*.swift linguist-generated\n[attr]binary -diff\n',
    );
    expect(defaultExclusion(file('app/src/Payment.pb.kt'), attributesOf('app/src/Payment.pb.kt', rules))).toBe('generated');
    expect(defaultExclusion(file('api/Client.swift'), attributesOf('api/Client.swift', rules))).toBe('generated');
    expect(defaultExclusion(file('Pods/Local/Fork.swift'), attributesOf('Pods/Local/Fork.swift', rules))).toBeUndefined();
  });
});

describe('Function: reviewOrder', () => {
  it('puts source before tests before other files, larger changes first', () => {
    const files = [
      file('README.md', 50),
      file('ios/ShopTests/CheckoutTests.swift', 40),
      file('ios/Shop/Small.swift', 2),
      file('ios/Shop/Big.swift', 30),
      file('android/app/build.gradle', 10),
    ];
    expect([...files].sort(reviewOrder).map((f) => f.path)).toEqual([
      'ios/Shop/Big.swift',
      'ios/Shop/Small.swift',
      'ios/ShopTests/CheckoutTests.swift',
      'README.md',
      'android/app/build.gradle',
    ]);
  });
});

describe('Function: buildPlan', () => {
  const files = [
    file('ios/Shop/Checkout.swift', 20),
    file('ios/Shop/de.lproj/Localizable.strings', 100),
    file('ios/Shop/Info.plist', 5),
    file('docs/guide.md', 10),
    file('ios/Shop/Assets/logo.png', 0, { binary: true, patch: '' }),
  ];
  const plan = (paths?: { include: string[]; exclude: string[] }) =>
    buildPlan({
      files,
      stats: { linesChanged: 135 },
      ...(paths ? { paths } : {}),
      agents: [
        { phase: 'review', agent: agent('code-review', { paths: { include: ['*.swift'], exclude: [] } }) },
        { phase: 'review', agent: agent('security', { paths: { include: ['*.swift', '*.plist'], exclude: [] } }) },
        { phase: 'review', agent: agent('documentation', { paths: { include: ['*.md', '*.swift'], exclude: [] } }) },
      ],
      promptTokens: () => 500,
    });

  it('excludes translations and binaries with their reason and gives each agent the files its paths select', () => {
    const p = plan();
    expect(p.excluded).toEqual([
      { path: 'ios/Shop/de.lproj/Localizable.strings', reason: 'translation' },
      { path: 'ios/Shop/Assets/logo.png', reason: 'binary' },
    ]);
    const names = (a: AgentPlan | undefined) => a?.files.map((i) => files[i]?.path);
    expect(names(p.agents[0])).toEqual(['ios/Shop/Checkout.swift']);
    expect(names(p.agents[1])).toEqual(['ios/Shop/Checkout.swift', 'ios/Shop/Info.plist']);
    expect(names(p.agents[2])).toEqual(['ios/Shop/Checkout.swift', 'docs/guide.md']);
    for (const a of p.agents) {
      expect(a.chunks).toBe(1);
      expect(a.needUsd).toBeGreaterThan(0);
      expect(a.firstChunkUsd).toBe(a.needUsd);
    }
  });

  it("lets the workflow's paths re-include a default exclusion and exclude a folder", () => {
    const p = plan({ include: ['*.strings', '*.swift'], exclude: ['docs/'] });
    expect(p.excluded.map((e) => [e.path, e.reason])).toEqual([
      ['ios/Shop/Info.plist', 'not in paths'],
      ['docs/guide.md', 'excluded by paths'],
      ['ios/Shop/Assets/logo.png', 'binary'],
      // Re-included, but no agent's files select it: listed, not dropped silently.
      ['ios/Shop/de.lproj/Localizable.strings', 'no agent reviews it'],
    ]);
  });

  it('keeps the default exclusions when paths.include only narrows (*.swift does not bring Pods/ or generated Swift back)', () => {
    const p = buildPlan({
      files: [
        file('ios/Pods/Alamofire/Session.swift'),
        file('ios/Shop/Gen.generated.swift'),
        file('ios/Shop/App.swift'),
        file('a.txt', 2, { patch: '' }),
      ],
      stats: { linesChanged: 9 },
      paths: { include: ['*.swift', '*.txt'], exclude: [] },
      agents: [{ phase: 'review', agent: agent('code-review') }],
      promptTokens: () => 500,
    });
    expect(p.excluded).toEqual([
      { path: 'ios/Pods/Alamofire/Session.swift', reason: 'vendored' },
      { path: 'ios/Shop/Gen.generated.swift', reason: 'generated' },
      { path: 'a.txt', reason: 'diff too large' },
    ]);
  });

  it('lays out the same chunks InvokeAgent will send and prices them at their worst case', () => {
    const many = Array.from({ length: 60 }, (_, i) => file(`ios/Shop/F${i}.swift`, 400));
    const p = buildPlan({
      files: many,
      stats: { linesChanged: 24_000 },
      agents: [{ phase: 'review', agent: agent('code-review') }],
      promptTokens: () => 500,
    });
    const a = p.agents[0] as AgentPlan;
    const chunks = layoutChunks(
      a.files.map((i) => many[i] as ChangedFile),
      a.chunkTokens,
    );
    expect(a.chunks).toBe(chunks.length);
    expect(a.maxTokens).toBe(answerTokens(agent('code-review'), a.chunkTokens));
    expect(a.needUsd).toBeGreaterThan(a.firstChunkUsd);
  });
});

describe('Function: shareMicro', () => {
  const planOf = (needs: Array<[number, number]>): AgentPlan[] =>
    needs.map(([need, first], i) => ({
      name: `a${i}`,
      phase: 'review',
      model: 'm',
      files: [],
      chunkTokens: 1000,
      chunks: 1,
      maxTokens: 1000,
      needUsd: need,
      firstChunkUsd: first,
    }));

  it('gives every agent its first chunk and divides the rest by need; shares add up to at most the limit', () => {
    const plan = planOf([
      [1.0, 0.1],
      [0.5, 0.1],
      [0.1, 0.1],
    ]);
    const limit = toMicro(1);
    const shares = plan.map((a) => shareMicro(plan, a.name, a.phase, limit));
    expect(shares.reduce((s, v) => s + v, 0)).toBeLessThanOrEqual(limit);
    for (const [i, a] of plan.entries()) expect(shares[i]).toBeGreaterThanOrEqual(toMicro(a.firstChunkUsd));
    expect(shares[0]).toBeGreaterThan(shares[1] as number);
  });

  it('grants first chunks cheapest first when they do not all fit: the others get nothing', () => {
    const plan = planOf([
      [0.3, 0.3],
      [0.1, 0.1],
      [0.2, 0.2],
    ]);
    const limit = toMicro(0.35);
    const shares = plan.map((a) => shareMicro(plan, a.name, a.phase, limit));
    expect(shares[0]).toBe(0);
    expect(shares[1]).toBeGreaterThanOrEqual(toMicro(0.1));
    expect(shares[2]).toBeGreaterThanOrEqual(toMicro(0.2));
    expect(shares.reduce((s, v) => s + v, 0)).toBeLessThanOrEqual(limit);
  });

  it('is unlimited without a run limit', () => {
    expect(shareMicro(planOf([[1, 1]]), 'a0', 'review', undefined)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('Function: countTokens / requestTokens', () => {
  it('counts with a real tokenizer, far below one token per byte on code', () => {
    const code =
      'func pay(card: Card) async throws -> Receipt {\n  let token = try await client.tokenize(card)\n  return try await api.charge(token)\n}\n';
    const o200k = countTokens(code, 'openai');
    expect(o200k).toBeGreaterThan(20);
    expect(o200k).toBeLessThan(Buffer.byteLength(code) / 2.5);
    expect(countTokens(code, 'claude')).toBeGreaterThan(o200k * 0.8);
    expect(requestTokens('openai', 'system', [{ content: code }])).toBe(countTokens('system', 'openai') + o200k + 8 + 8);
  });

  it('counts a long line without spaces quickly and never below its real count', () => {
    const blob = Buffer.from(Array.from({ length: 6000 }, (_, i) => i % 251)).toString('base64');
    const n = countTokens(blob, 'openai');
    expect(n).toBeGreaterThan(blob.length / 8);
    expect(n).toBeLessThanOrEqual(blob.length);
  });
});

describe('Function: buildPlan (the verifier)', () => {
  it('gives the verifier no files and batches for the findings the reviewers’ chunks may report, at its model’s worst case', () => {
    const files = [file('A.swift'), file('B.swift')];
    const verifier = agent('verifier', {
      model: model('claude-haiku', 1, 5),
      output: 'verdicts',
      prompt: '',
      verify: { batch: 4, unconfirmed: 'drop' },
    });
    const plan = buildPlan({
      files,
      stats: { linesChanged: 6 },
      agents: [
        { phase: 'review', agent: agent('code-review') },
        { phase: 'review', agent: agent('security') },
        { phase: 'verify', agent: verifier },
      ],
      promptTokens: () => 500,
    });
    const [review, , verify] = plan.agents;
    expect(review?.chunks).toBe(1);
    // Two reviewer chunks × 5 findings = 10 findings: 3 batches of at most 4.
    expect(verify).toMatchObject({ name: 'verifier', files: [], chunks: 3, maxTokens: 256 + 400 });
    expect(verify?.needUsd).toBeCloseTo(3 * (verify?.firstChunkUsd ?? 0), 6);
    expect(verify?.firstChunkUsd).toBeGreaterThan(0);
    // The verifier picks no file: every kept file is reviewed by a reviewer.
    expect(plan.excluded).toEqual([]);
  });
});
