import { describe, expect, it } from 'vitest';
import { selectCommittable } from '../../../lambdas/core/generated-files.js';
import { offlineTests, testPathOf } from '../../../lib/local/offline-tests.js';
import { DEFAULT_TEST_PATHS } from '../../../lib/workflow/model.js';

/** A prompt section as `renderFile` lays it out: `### path (status, +a -d)` and numbered added lines. */
const section = (path: string, lines: string[]) =>
  [`### ${path} (modified, +${lines.length} -0)`, '```diff', ...lines.map((l, i) => `${String(i + 1).padStart(3)} + ${l}`), '```'].join(
    '\n',
  );

describe('Function: testPathOf', () => {
  it('puts Swift tests in the test target and Kotlin/Java tests in the test source set', () => {
    expect(testPathOf('Sources/Shop/Cart.swift')).toBe('Tests/ShopTests/CartTests.swift');
    expect(testPathOf('ios/Checkout/CheckoutViewModel.swift')).toBe('iosTests/CheckoutViewModelTests.swift');
    expect(testPathOf('android/app/src/main/java/com/acme/Cart.kt')).toBe('android/app/src/test/java/com/acme/CartTest.kt');
    expect(testPathOf('README.md')).toBeUndefined();
  });
});

describe('Function: offlineTests', () => {
  it('writes an XCTest and a JUnit 5 file per changed source file, with a test per added function, all under the default test folders', () => {
    // Prepare
    const prompt = [
      section('ios/Checkout/PaymentClient.swift', ['final class PaymentClient {', '  func pay(amount: Int) -> Bool { amount > 0 }', '}']),
      section('android/app/src/main/java/com/acme/cart/CartRepository.kt', [
        'class CartRepository {',
        '  suspend fun total(): Int = 0',
        '}',
      ]),
      section('iosTests/PaymentClientTests.swift', ['final class PaymentClientTests {}']),
    ].join('\n\n');

    // Act
    const files = offlineTests(prompt);

    // Assess
    expect(files.map((f) => f.path)).toEqual([
      'iosTests/PaymentClientTests.swift',
      'android/app/src/test/java/com/acme/cart/CartRepositoryTest.kt',
    ]);
    expect(files[0]?.content).toMatch(/import XCTest[\s\S]*final class PaymentClientTests: XCTestCase[\s\S]*func test_pay_/);
    expect(files[1]?.content).toMatch(/package com\.acme\.cart[\s\S]*import org\.junit\.jupiter\.api\.Test[\s\S]*fun `total with defaults/);
    expect(selectCommittable(files, DEFAULT_TEST_PATHS).refused).toEqual([]);
  });
});
