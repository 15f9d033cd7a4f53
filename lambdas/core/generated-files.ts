import { z } from 'zod';
import { type Change, type GeneratedFile, GeneratedFileSchema, type RefusedFile, RefusedFileSchema } from './contracts.js';
import { globMatcher } from './plan.js';
import { redactSecrets } from './redact.js';

/**
 * Largest generated file committed, in bytes (UTF-8): a unit test file is a few KB; 64 KB leaves
 * room for a large one while keeping one model answer from filling the repository.
 */
export const MAX_GENERATED_FILE_BYTES = 64 * 1024;

/** Most generated files committed per run (the first ones, in the agents' order). */
export const MAX_GENERATED_FILES = 20;

/** What an `output: tests` agent stores (`runs/<run>/files/<phase>/<agent>.json`): the files it may commit and those it refused. */
export const GeneratedFilesArtifactSchema = z.strictObject({
  agent: z.string(),
  files: z.array(GeneratedFileSchema),
  refused: z.array(RefusedFileSchema),
});
export type GeneratedFilesArtifact = z.infer<typeof GeneratedFilesArtifactSchema>;

/**
 * Why `path` can never be a generated file's path, or undefined when its shape is fine: it must be
 * relative (no leading `/`, no drive letter), use `/` separators, have no empty, `.` or `..`
 * segment, no control characters and not point into `.git/`.
 */
export function pathProblem(path: string): string | undefined {
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'an absolute path';
  if (path.includes('\\')) return 'a backslash in the path (use /)';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'a control character in the path';
  const segments = path.split('/');
  if (segments.includes('..')) return 'a ".." segment (the path leaves the repository)';
  if (segments.some((s) => s === '' || s === '.')) return 'an empty or "." segment in the path';
  if (segments[0] === '.git') return 'a path inside .git';
  return undefined;
}

/**
 * The files of a `tests` agent's answers, screened before anything is stored: a path of the wrong
 * shape ({@link pathProblem}), a file over {@link MAX_GENERATED_FILE_BYTES}, a second file of the same
 * path, or content in which `redactSecrets` finds a secret is refused with its reason (a secret is
 * never committed, nor redacted into a placeholder that would be). Refused files keep their path only.
 */
export async function screenGeneratedFiles(files: readonly GeneratedFile[]): Promise<{ files: GeneratedFile[]; refused: RefusedFile[] }> {
  const kept: GeneratedFile[] = [];
  const refused: RefusedFile[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    const path = f.path.replace(/[\r\n]+/g, ' ').slice(0, 300);
    const problem = pathProblem(f.path);
    if (problem) refused.push({ path, reason: problem });
    else if (Buffer.byteLength(f.content, 'utf8') > MAX_GENERATED_FILE_BYTES) {
      refused.push({ path, reason: `larger than ${MAX_GENERATED_FILE_BYTES} bytes` });
    } else if (seen.has(f.path)) refused.push({ path, reason: 'written twice (the first is kept)' });
    else {
      const secrets = await redactSecrets(f.content);
      if (secrets.count > 0) {
        refused.push({
          path,
          reason: `contains ${secrets.count === 1 ? 'a secret' : `${secrets.count} secrets`} (${secrets.secrets.map((s) => s.kind).join(', ')})`,
        });
      } else {
        seen.add(f.path);
        kept.push({ path: f.path, content: f.content });
      }
    }
  }
  return { files: kept, refused };
}

/**
 * The files that may be committed: those under `paths` (the workflow's test-folder globs, see
 * `globMatcher`), at most {@link MAX_GENERATED_FILES}, one per path; the rest refused with why.
 */
export function selectCommittable(
  files: readonly GeneratedFile[],
  paths: readonly string[],
): { files: GeneratedFile[]; refused: RefusedFile[] } {
  const inTests = globMatcher(paths);
  const kept: GeneratedFile[] = [];
  const refused: RefusedFile[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    const problem = pathProblem(f.path);
    if (problem) refused.push({ path: f.path, reason: problem });
    else if (!inTests(f.path)) refused.push({ path: f.path, reason: `not under the test folders (${paths.join(', ')})` });
    else if (seen.has(f.path)) refused.push({ path: f.path, reason: 'written twice (the first is kept)' });
    else if (kept.length >= MAX_GENERATED_FILES) refused.push({ path: f.path, reason: `more than ${MAX_GENERATED_FILES} files` });
    else {
      seen.add(f.path);
      kept.push(f);
    }
  }
  return { files: kept, refused };
}

/** The branch generated tests are committed to: `agentflow/tests/<pr>-<first 7 of the head SHA>`. */
export const testsBranch = (change: Pick<Change, 'number' | 'headSha'>): string =>
  `agentflow/tests/${change.number}-${change.headSha.slice(0, 7)}`;
