import { describe, expect, it } from 'vitest';
import { kindOf, redactAnswer, redactSecrets, redactTexts } from '../../../lambdas/core/redact.js';
import { isSecretValue, shannonEntropy } from '../../../lambdas/core/secrets/allow.js';
import { secretsCorpus } from '../../fixtures/secrets/corpus.js';

/** A snippet as an added diff hunk: every line prefixed with `+`. */
const added = (text: string) =>
  text
    .split('\n')
    .map((l) => `+${l}`)
    .join('\n');

const MARKER = /\[REDACTED:([^\]]*)\]/g;

describe('Function: redactSecrets', () => {
  const { secrets, lookAlikes } = secretsCorpus();

  it('holds a corpus of at least 50 secret kinds and 30 look-alikes', () => {
    // Assess
    expect(new Set(secrets.map((s) => s.kind)).size).toBeGreaterThanOrEqual(50);
    expect(lookAlikes.length).toBeGreaterThanOrEqual(30);
    expect(secrets.every((s) => s.values.length > 0 && s.values.every((v) => v.length >= 6))).toBe(true);
  });

  it('redacts ≥ 95 % of the corpus secrets with ≤ 5 % false positives', async () => {
    // Act
    const caught = await Promise.all(
      secrets.map(async (s) => {
        const r = await redactSecrets(added(s.text));
        return r.count > 0 && s.values.every((v) => !r.text.includes(v));
      }),
    );
    const flagged = await Promise.all(lookAlikes.map(async (l) => (await redactSecrets(added(l.text))).count > 0));
    const recall = caught.filter(Boolean).length / secrets.length;
    const falsePositives = flagged.filter(Boolean).length / lookAlikes.length;
    console.log(
      `secret redaction: recall ${(recall * 100).toFixed(1)} % of ${secrets.length} secrets, ` +
        `false positives ${(falsePositives * 100).toFixed(1)} % of ${lookAlikes.length} look-alikes`,
    );

    // Assess
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expect(falsePositives).toBeLessThanOrEqual(0.05);
  });

  it('never returns a secret value and names the kind in every marker', async () => {
    for (const s of secrets) {
      // Act
      const r = await redactSecrets(added(s.text));

      // Assess
      for (const v of s.values) expect(r.text, s.kind).not.toContain(v);
      // A multi-line secret gets one marker per line but counts once.
      const kinds = [...r.text.matchAll(MARKER)].map((m) => m[1]);
      expect(kinds.length, s.kind).toBeGreaterThanOrEqual(r.count);
      for (const k of kinds) expect(k, s.kind).toMatch(/^[a-z]+(?:-[a-z]+)*$/);
      expect(new Set(r.secrets.map((x) => x.kind))).toEqual(new Set(kinds));
    }
  });

  it('leaves every look-alike unchanged', async () => {
    for (const l of lookAlikes) {
      // Act
      const r = await redactSecrets(added(l.text));

      // Assess
      expect(r.text, l.name).toBe(added(l.text));
    }
  });

  it('keeps the name and redacts only the value of an assignment', async () => {
    // Prepare
    const text = 'MYAPP_UPLOAD_STORE_PASSWORD=q8Wz3LmP0vXs!';

    // Act
    const r = await redactSecrets(text);

    // Assess
    expect(r).toEqual({ text: 'MYAPP_UPLOAD_STORE_PASSWORD=[REDACTED:password]', count: 1, secrets: [{ kind: 'password' }] });
  });

  it('does not flag a key name assigned to itself (CENTRALAUTH_TOKEN = "centralauth_Token")', async () => {
    // Act
    const r = await redactSecrets('    CENTRALAUTH_TOKEN = "centralauth_Token"');

    // Assess
    expect(r.count).toBe(0);
  });

  it('redacts a PEM private key block whole, one marker per line, counted once', async () => {
    // Act
    const r = await redactSecrets('-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----');

    // Assess
    expect(r.text).toBe('[REDACTED:private-key]\n[REDACTED:private-key]\n[REDACTED:private-key]');
    expect(r.count).toBe(1);
  });

  it('keeps the line count of a hunk when a PEM block is redacted (line 8 stays the 8th)', async () => {
    // Prepare
    const body = Array.from({ length: 4 }, (_, i) => `MII${String.fromCharCode(65 + i).repeat(8)}q9Zr${i}Xk2Lm7Wp4Tn8Vb1Hs6Jd3Fg0`);
    const pemLines = ['-----BEGIN PRIVATE KEY-----', ...body, '-----END PRIVATE KEY-----'];
    const patch = ['@@ -0,0 +1,8 @@', ...pemLines.map((l) => `+${l}`), '+let seventh = 7', '+let eighth = 8', ''].join('\n');

    // Act
    const r = await redactSecrets(patch);

    // Assess
    const lines = r.text.split('\n');
    expect(lines).toHaveLength(patch.split('\n').length);
    expect(lines.slice(1, 7)).toEqual(Array(6).fill('+[REDACTED:private-key]'));
    expect(lines[8]).toBe('+let eighth = 8');
    expect(r.count).toBe(1);
  });

  it('ignores a secretlint-disable comment inside the change', async () => {
    // Prepare
    const token = `gh${'p_'}${'aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5'}`;

    // Act
    const r = await redactSecrets(`// secretlint-disable\nlet t = "${token}"\n// secretlint-enable`);

    // Assess
    expect(r.text).not.toContain(token);
  });

  // A quadratic regex takes 17–42 s on these inputs; linear ones finish in well under 200 ms each.
  it('finishes on 200 KB of pathological input (no quadratic regex)', { timeout: 5_000 }, async () => {
    // Prepare
    const n = 200_000;
    const fill = (unit: string) => unit.repeat(Math.ceil(n / unit.length));
    const inputs = [
      ...['\n', '\n ', '\r', '/', '=', 'a', '"', '-----BEGIN ', '-----BEGIN PRIVATE KEY-----', '-----BEGIN CERTIFICATE-----\n'].map(fill),
      ...['//a', 'token = "', ' \n'].map(fill),
      `+x${'\r'.repeat(30_000)}`,
      `+x${'\u2028'.repeat(30_000)}`,
      `keyPassword${' '.repeat(n)}`,
      `buildConfigField${' '.repeat(n)}`,
      `<key>API_TOKEN</key>${' \n'.repeat(n / 2)}`,
    ];

    for (const text of inputs) {
      // Act
      const r = await redactSecrets(text);

      // Assess
      expect(r.count).toBeGreaterThanOrEqual(0);
    }
  });

  it('returns empty text unchanged', async () => {
    expect(await redactSecrets('')).toEqual({ text: '', count: 0, secrets: [] });
  });
});

describe('Function: redactTexts', () => {
  it('gives every text of the whole corpus, linted together, what redactSecrets gives it alone', async () => {
    const { secrets, lookAlikes } = secretsCorpus();
    // Raw and as added diff lines, secrets beside look-alikes, with empty texts between some.
    const texts = [...secrets.map((s) => s.text), ...lookAlikes.map((l) => l.text), '', ...secrets.map((s) => added(s.text))];
    texts.splice(7, 0, '');
    // Act
    const together = await redactTexts(texts);
    const alone = await Promise.all(texts.map((t) => redactSecrets(t)));
    // Assess
    expect(together).toEqual(alone);
    expect(together.reduce((n, r) => n + r.count, 0)).toBeGreaterThan(secrets.length);
  });

  it('gives each corpus text, among clean short fields, what it gets alone (own rules are tried only where the joined texts match them)', async () => {
    const { secrets, lookAlikes } = secretsCorpus();
    const clean = ['security', 'Force unwrap of an optional.', 'ios/App/Login.swift', ''];
    for (const t of [...secrets.map((s) => s.text), ...lookAlikes.map((l) => l.text), ...secrets.map((s) => added(s.text))]) {
      // At the start, in the middle and at the end (edges of the joined text).
      for (const texts of [
        [t, ...clean],
        [clean[0] as string, t, clean[1] as string],
        [...clean, t],
      ]) {
        expect(await redactTexts(texts), t.slice(0, 60)).toEqual(await Promise.all(texts.map((x) => redactSecrets(x))));
      }
    }
  });

  it('lints texts alone again when a rule matches over the line between them, and finds values in their own text', async () => {
    const { secrets } = secretsCorpus();
    // A name at the end of one text and a 40-character value at the start of the next: one AWS
    // secret-key finding over both when joined; alone, neither text holds a secret.
    const split = ['export AWS_SECRET_ACCESS_KEY=', 'Zq8vT3kP1mN9xR2wY7bL4cH6jF0sD5gA8eU3iO1q'];
    // A PEM block cut after its first line.
    const pem = secrets.find((x) => /-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n/.test(x.text))?.text ?? '';
    const cut = pem.search(/PRIVATE KEY-----\r?\n/) + 'PRIVATE KEY-----\n'.length;
    expect(cut).toBeGreaterThan('PRIVATE KEY-----\n'.length);
    expect(cut).toBeLessThan(pem.length);
    // A GCP service-account JSON: secretlint's rule parses the whole text.
    const gcp = JSON.stringify(
      {
        type: 'service_account',
        project_id: 'shop-apps',
        private_key_id: '5c8f1e2d9a7b3c4e6f0a1b2c3d4e5f6a7b8c9d0e',
        private_key: pem,
        client_email: 'ci@shop-apps.iam.gserviceaccount.com',
      },
      null,
      2,
    );
    const texts = ['intro', ...split, 'between', pem.slice(0, cut), pem.slice(cut), gcp, 'after'];
    // Act
    const together = await redactTexts(texts);
    // Assess
    expect(together).toEqual(await Promise.all(texts.map((t) => redactSecrets(t))));
    expect(together[2]?.count).toBe(0);
  });
});

describe('Function: redactAnswer', () => {
  it('redacts the model’s message and drops suggested code that holds a secret (a suggestion would commit the placeholder)', async () => {
    const key = 'AKIAIOSFODNN7EXAMPLE';
    const f = { file: 'a.swift', line: 1, severity: 'high' as const, category: 'security', suggestion: '' };
    const { answer, count } = await redactAnswer({
      summary: '',
      findings: [
        { ...f, message: `Key ${key} in code.`, replacement: `let key = "${key}"` },
        { ...f, line: 2, message: 'Cleartext URL.', replacement: 'let u = "https://x"' },
      ],
    });
    expect(answer.findings[0]?.message).toBe('Key [REDACTED:aws-access-key] in code.');
    expect(answer.findings[0]?.replacement).toBeUndefined();
    expect(answer.findings[1]?.replacement).toBe('let u = "https://x"');
    expect(count).toBe(1);
  });
});

describe('Function: kindOf', () => {
  it('turns secretlint message ids into marker kinds', () => {
    expect(kindOf('AWSSecretAccessKey')).toBe('aws-secret-access-key');
    expect(kindOf('GITHUB_TOKEN')).toBe('github-token');
    expect(kindOf('1PASSWORD_SERVICE_ACCOUNT_TOKEN')).toBe('password-service-account-token');
  });
});

describe('Function: isSecretValue', () => {
  it('rejects placeholders, references and identifiers', () => {
    for (const v of ['xxxxxxxxxxxxxxxx', '<your-key>', '${API_TOKEN}', '$(API_TOKEN)', 'YOUR_API_KEY', 'changeme', 'auth_token']) {
      expect(isSecretValue('API_TOKEN', v, 'token'), v).toBe(false);
    }
  });

  it('accepts a short keystore password but not a short token', () => {
    expect(isSecretValue('storePassword', 'andr0id42', 'password')).toBe(true);
    expect(isSecretValue('apiToken', 'andr0id42', 'token')).toBe(false);
  });

  it('measures entropy in bits per character', () => {
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
  });
});
