import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../lambdas/core/errors.js';
import { assertSafeRef, MAX_REF_LENGTH } from '../../../lambdas/core/refs.js';

/** Whether git itself accepts `ref` as a branch name (`git check-ref-format --allow-onelevel`). */
const gitAccepts = (ref: string) => {
  try {
    execFileSync('git', ['check-ref-format', '--allow-onelevel', ref], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

const errorOf = (act: () => unknown): Error => {
  try {
    act();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
};

describe('Function: assertSafeRef', () => {
  it.each([
    'main',
    'HEAD',
    'feature/checkout-payments',
    'release/v1.2.3',
    'v2.0.0-rc.1',
    'refs/heads/main',
    'user@host',
    'a'.repeat(MAX_REF_LENGTH),
  ])('accepts the ref name %j', (ref) => {
    // Act
    const out = assertSafeRef(ref);

    // Assess
    expect(out).toBe(ref);
    expect(gitAccepts(ref)).toBe(true);
  });

  it.each(['0123456789abcdef0123456789abcdef01234567', 'a'.repeat(64), 'deadbee'])('accepts the commit SHA %s', (sha) => {
    expect(assertSafeRef(sha)).toBe(sha);
  });

  it.each(['HEAD~1', 'main^', '583c796a4^', 'feature/x~12', 'HEAD^2~3'])('accepts the ancestry expression %s', (ref) => {
    expect(assertSafeRef(ref)).toBe(ref);
  });

  it.each([
    ['', /is empty/],
    ['-x', /starts with "-"/],
    ['--upload-pack=touch /tmp/x', /starts with "-"/],
    ['--end-of-options', /starts with "-"/],
    ['has space', /contains " "/],
    ['tab\there', /contains "\\t"/],
    ['new\nline', /contains "\\n"/],
    ['del\x7f', /contains "\\u007f"/],
    ['~1', /contains "~"/],
    ['^', /contains "\^"/],
    ['ma~in', /contains "~"/],
    ['-x~1', /starts with "-"/],
    ['a:b', /contains ":"/],
    ['what?', /contains "\?"/],
    ['glob*', /contains "\*"/],
    ['br[acket', /contains "\["/],
    ['back\\slash', /contains "\\\\"/],
    ['main..feature', /contains "\.\."/],
    ['main@{1}', /contains "@\{"/],
    ['@', /is "@"/],
    ['branch.lock', /ending with "\.lock"/],
    ['refs/heads/x.lock/y', /ending with "\.lock"/],
    ['trailing/', /empty path component/],
    ['/leading', /empty path component/],
    ['double//slash', /empty path component/],
    ['ends.', /ends with "\."/],
    ['.hidden', /starting with "\."/],
    ['feature/.hidden', /starting with "\."/],
  ])('rejects %j', (ref, reason) => {
    // Act
    const act = () => assertSafeRef(ref);

    // Assess
    expect(act).toThrow(InvalidInputError);
    expect(act).toThrow(reason);
    expect(act).toThrow(`invalid git ref ${JSON.stringify(ref).replaceAll('\x7f', '\\u007f')}:`);
    expect(errorOf(act).message).not.toMatch(/[\n\x7f]/);
    if (!ref.startsWith('-') && ref !== '') expect(gitAccepts(ref)).toBe(false);
  });

  it('rejects a ref longer than 255 characters and names it cut short', () => {
    // Prepare
    const ref = 'b'.repeat(MAX_REF_LENGTH + 1);

    // Act
    const act = () => assertSafeRef(ref);

    // Assess
    expect(act).toThrow(/^invalid git ref "b{80}…": is longer than 255 characters$/);
  });
});
