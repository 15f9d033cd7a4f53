/**
 * Bench figures for secret redaction (part of `npm run bench`, issue 10):
 *
 * - recall: share of the corpus secrets (`test/fixtures/secrets/corpus.ts`) whose values are all gone
 *   after redaction (target ≥ 0.95);
 * - false-positive rate: share of the corpus look-alikes that get any redaction (target ≤ 0.05);
 * - throughput in MB/s of `redactSecrets` over a synthetic ~4 MB mobile diff (Swift, Kotlin, lock
 *   files, a 256 KB base64 asset line, a few secrets), one call per file as LoadContext does.
 */
import { redactSecrets } from '../lambdas/core/redact.js';
import { secretsCorpus } from '../test/fixtures/secrets/corpus.js';

/** One bench figure, as `bin/bench.ts` records it. */
export interface SecretsBenchResult {
  name: string;
  value: number;
  unit: string;
  target: string | null;
}

const added = (text: string) =>
  text
    .split('\n')
    .map((l) => `+${l}`)
    .join('\n');

/** A synthetic diff of about `mb` megabytes split into files of ~64 KB, with some corpus secrets spread in. */
function syntheticPatches(mb: number): string[] {
  const { secrets } = secretsCorpus(7);
  const lines = [
    '+    func loadCart(for user: User) async throws -> Cart {',
    '+        let request = URLRequest(url: baseURL.appendingPathComponent("cart/\\(user.id)"))',
    '+        val token = tokenStore.current() ?: return Result.failure(AuthError.Missing)',
    '+      "integrity": "sha512-9vD0xWm2GmZQy1Ck6zCTiV3F7Y0hVhVbqO4aX9tEtQfJr3vS8oI7PeZbNoHkUqLwWxYz0A1B2C3D4E5F6G7H8I9J0KL==",',
    '+  Alamofire: 3ec537f71edc9804815215393ae2b1a8ea33a844',
    '+            storePassword System.getenv("KEYSTORE_PASSWORD")',
    ' \t\t13B07F961A680F5B00A75B9A /* AppDelegate.swift in Sources */ = {isa = PBXBuildFile; };',
    '-        return cart.items.filter { $0.quantity > 0 }.map(\\.price).reduce(0, +)',
  ];
  const patches: string[] = [];
  const target = mb * 1024 * 1024;
  let size = 0;
  let i = 0;
  while (size < target) {
    const body: string[] = ['@@ -1,400 +1,420 @@'];
    let fileSize = 0;
    while (fileSize < 64 * 1024) {
      const line = lines[i % lines.length] ?? '';
      body.push(line);
      fileSize += line.length + 1;
      i++;
    }
    const secret = secrets[patches.length % secrets.length];
    if (secret) body.push(added(secret.text));
    const patch = body.join('\n');
    patches.push(patch);
    size += patch.length;
  }
  // One generated asset: a single 256 KB base64 line (no separators, the worst case for name scans).
  patches.push(`+let asset = "${Buffer.alloc(192 * 1024, 7).toString('base64')}"`);
  return patches;
}

/**
 * Runs the redaction bench and hands every figure to `record`.
 *
 * @example
 * await secretsBench((r) => console.log(`${r.name}: ${r.value} ${r.unit}`));
 */
export async function secretsBench(record: (r: SecretsBenchResult) => void): Promise<void> {
  const { secrets, lookAlikes } = secretsCorpus();
  let caught = 0;
  for (const s of secrets) {
    const r = await redactSecrets(added(s.text));
    if (r.count > 0 && s.values.every((v) => !r.text.includes(v))) caught++;
  }
  let flagged = 0;
  for (const l of lookAlikes) {
    if ((await redactSecrets(added(l.text))).count > 0) flagged++;
  }
  record({
    name: `secret redaction recall (${secrets.length} corpus secrets)`,
    value: caught / secrets.length,
    unit: 'ratio',
    target: '≥ 0.95',
  });
  record({
    name: `secret redaction false positives (${lookAlikes.length} look-alikes)`,
    value: flagged / lookAlikes.length,
    unit: 'ratio',
    target: '≤ 0.05',
  });

  const patches = syntheticPatches(4);
  const bytes = patches.reduce((s, p) => s + Buffer.byteLength(p), 0);
  await redactSecrets(patches[0] ?? ''); // warm-up: rule compilation, JIT
  const started = performance.now();
  for (const p of patches) await redactSecrets(p);
  const seconds = (performance.now() - started) / 1000;
  record({
    name: `secret redaction throughput (${(bytes / 1024 / 1024).toFixed(1)} MB diff)`,
    value: bytes / 1024 / 1024 / seconds,
    unit: 'MB/s',
    target: null,
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await secretsBench((r) => console.log(`${r.name}: ${Number(r.value.toFixed(3))} ${r.unit}${r.target ? ` (target ${r.target})` : ''}`));
}
