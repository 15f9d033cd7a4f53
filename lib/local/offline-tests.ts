import { addedLinesFromPrompt } from './offline-rules.js';

/** A test file the offline model writes for a `tests` agent. */
export interface OfflineTestFile {
  path: string;
  content: string;
}

const isTest = (f: string) => /(Tests?\/|\/test\/|\/androidTest\/|Tests?\.(swift|kt|java)$)/.test(f);

/** The functions the change adds (`func name(` in Swift, `fun name(` in Kotlin, methods in Java), in order, once each. */
function addedFunctions(lines: ReadonlyArray<{ text: string }>): string[] {
  const names = lines.flatMap((l) => {
    const m =
      /\bfunc\s+([A-Za-z_]\w*)|\bfun\s+(?:<[^>]*>\s*)?(?:[\w.]+\.)?([A-Za-z_]\w*)\s*\(|\b(?:public|private|protected)\s+[\w<>[\]]+\s+([a-z]\w*)\s*\(/.exec(
        l.text,
      );
    const name = m?.[1] ?? m?.[2] ?? m?.[3];
    return name ? [name] : [];
  });
  return [...new Set(names)].slice(0, 5);
}

/**
 * Where the test of `file` goes: Swift `Sources/<Module>/X.swift` → `Tests/<Module>Tests/XTests.swift`,
 * other Swift `<Top>/…/X.swift` → `<Top>Tests/XTests.swift`; Kotlin/Java `…/src/main/<lang>/pkg/X.kt`
 * → `…/src/test/<lang>/pkg/XTest.kt` (else `src/test/kotlin/XTest.kt`).
 */
export function testPathOf(file: string): string | undefined {
  const name = /([^/]+)\.(swift|kt|java)$/.exec(file);
  if (!name) return undefined;
  const [, base, ext] = name;
  if (ext === 'swift') {
    const spm = /^Sources\/([^/]+)\//.exec(file);
    if (spm) return `Tests/${spm[1]}Tests/${base}Tests.swift`;
    const top = file.includes('/') ? file.split('/')[0] : undefined;
    return top ? `${top}Tests/${base}Tests.swift` : `${base}Tests.swift`;
  }
  if (file.includes('/src/main/')) return file.replace('/src/main/', '/src/test/').replace(/([^/]+)\.(kt|java)$/, `$1Test.${ext}`);
  return `src/test/kotlin/${base}Test.${ext}`;
}

const swiftModule = (file: string) => /^Sources\/([^/]+)\//.exec(file)?.[1] ?? (file.includes('/') ? file.split('/')[0] : 'App');

function xcTest(file: string, base: string, functions: readonly string[]): string {
  const tests = (functions.length > 0 ? functions : ['init']).map(
    (f) => `    func test_${f}_withDefaults_behavesAsSpecified() {
        // Arrange
        let sut = ${base}()
        // Act / Assert: ${f} is the unit the change added.
        XCTAssertNotNil(sut)
    }`,
  );
  return `import XCTest
@testable import ${swiftModule(file)}

/// Tests of ${base} written by the AgentFlow offline model (a rule-based stand-in, not a real model).
final class ${base}Tests: XCTestCase {
${tests.join('\n\n')}
}
`;
}

function jUnit(file: string, base: string, functions: readonly string[], ext: string): string {
  const pkg = /\/src\/main\/(?:java|kotlin)\/(.+)\/[^/]+$/.exec(file)?.[1]?.replace(/\//g, '.');
  const tests = (functions.length > 0 ? functions : ['create']).map((f) =>
    ext === 'kt'
      ? `    @Test
    fun \`${f} with defaults behaves as specified\`() = runTest {
        val sut = ${base}()
        assertNotNull(sut)
    }`
      : `    @Test
    void ${f}_withDefaults_behavesAsSpecified() {
        ${base} sut = new ${base}();
        assertNotNull(sut);
    }`,
  );
  const header = pkg ? `package ${pkg}${ext === 'java' ? ';' : ''}\n\n` : '';
  return ext === 'kt'
    ? `${header}import kotlinx.coroutines.test.runTest
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Test

/** Tests of ${base} written by the AgentFlow offline model (a rule-based stand-in, not a real model). */
class ${base}Test {
${tests.join('\n\n')}
}
`
    : `${header}import static org.junit.jupiter.api.Assertions.assertNotNull;

import org.junit.jupiter.api.Test;

/** Tests of ${base} written by the AgentFlow offline model (a rule-based stand-in, not a real model). */
class ${base}Test {
${tests.join('\n\n')}
}
`;
}

/**
 * The offline model's test files for a `tests` agent's prompt: one XCTest (Swift) or JUnit 5
 * (Kotlin, Java) file per changed source file, at the test path of {@link testPathOf}, with a test
 * per function the change adds. Deterministic: the same prompt gives the same files.
 */
export function offlineTests(prompt: string): OfflineTestFile[] {
  return addedLinesFromPrompt(prompt).flatMap(({ file, added }) => {
    if (isTest(file)) return [];
    const path = testPathOf(file);
    const m = /([^/]+)\.(swift|kt|java)$/.exec(file);
    if (!path || !m?.[1] || !m[2]) return [];
    const functions = addedFunctions(added);
    return [{ path, content: m[2] === 'swift' ? xcTest(file, m[1], functions) : jUnit(file, m[1], functions, m[2]) }];
  });
}
