import { describe, expect, it } from 'vitest';
import {
  MAX_GENERATED_FILE_BYTES,
  MAX_GENERATED_FILES,
  pathProblem,
  screenGeneratedFiles,
  selectCommittable,
  testsBranch,
} from '../../../lambdas/core/generated-files.js';
import { DEFAULT_TEST_PATHS } from '../../../lib/workflow/model.js';

const file = (path: string, content = 'final class CartTests {}\n') => ({ path, content });

describe('Function: pathProblem', () => {
  it('refuses absolute paths, .. segments, backslashes, empty segments and .git', () => {
    expect(pathProblem('/etc/passwd')).toMatch(/absolute/);
    expect(pathProblem('C:/x/Test.kt')).toMatch(/absolute/);
    expect(pathProblem('AppTests/../App/Pay.swift')).toMatch(/\.\./);
    expect(pathProblem('AppTests\\CartTests.swift')).toMatch(/backslash/);
    expect(pathProblem('AppTests//CartTests.swift')).toMatch(/empty/);
    expect(pathProblem('.git/hooks/pre-commit')).toMatch(/\.git/);
    expect(pathProblem('AppTests/CartTests.swift')).toBeUndefined();
  });
});

describe('Function: screenGeneratedFiles', () => {
  it('refuses a file that contains a secret (never redacted into a commit) and reports it', async () => {
    // Prepare
    const key = ['AKIA', 'Z3K7Q2W9X4C8V6B1'].join('');
    const leaky = file('AppTests/ApiTests.swift', `let awsKey = "${key}"\n`);

    // Act
    const r = await screenGeneratedFiles([file('AppTests/CartTests.swift'), leaky]);

    // Assess
    expect(r.files.map((f) => f.path)).toEqual(['AppTests/CartTests.swift']);
    expect(r.refused).toEqual([{ path: 'AppTests/ApiTests.swift', reason: expect.stringMatching(/secret/) }]);
    expect(JSON.stringify(r)).not.toContain(key);
  });

  it('refuses paths with .. and files over the size cap', async () => {
    const r = await screenGeneratedFiles([
      file('../outside/CartTests.swift'),
      file('AppTests/Big.swift', 'x'.repeat(MAX_GENERATED_FILE_BYTES + 1)),
    ]);
    expect(r.files).toEqual([]);
    expect(r.refused.map((x) => x.reason)).toEqual([expect.stringMatching(/\.\./), expect.stringMatching(/larger than/)]);
  });
});

describe('Function: selectCommittable', () => {
  it('refuses files outside the test folders and beyond the count cap', () => {
    // Prepare
    const many = Array.from({ length: MAX_GENERATED_FILES + 1 }, (_, i) => file(`AppTests/T${i}Tests.swift`));

    // Act
    const r = selectCommittable([file('App/Pay.swift'), file('app/src/main/java/Cart.kt'), ...many], DEFAULT_TEST_PATHS);

    // Assess
    expect(r.files).toHaveLength(MAX_GENERATED_FILES);
    expect(r.refused.map((x) => x.path)).toEqual([
      'App/Pay.swift',
      'app/src/main/java/Cart.kt',
      `AppTests/T${MAX_GENERATED_FILES}Tests.swift`,
    ]);
    expect(r.refused[0]?.reason).toMatch(/not under the test folders/);
  });

  it('accepts the mobile test folders of the defaults', () => {
    const paths = [
      'AppTests/CartTests.swift',
      'Tests/ShopTests/CartTests.swift',
      'app/src/test/kotlin/CartTest.kt',
      'app/src/androidTest/java/CartTest.java',
    ];
    expect(
      selectCommittable(
        paths.map((p) => file(p)),
        DEFAULT_TEST_PATHS,
      ).refused,
    ).toEqual([]);
  });
});

describe('Function: testsBranch', () => {
  it('names the branch after the pull request and the short head SHA', () => {
    expect(testsBranch({ number: 42, headSha: '0123456789abcdef' })).toBe('agentflow/tests/42-0123456');
  });
});
