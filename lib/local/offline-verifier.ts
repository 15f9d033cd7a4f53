import { type AddedLines, reviewAdded } from './offline-rules.js';

/** One finding of a verifier prompt as the offline model reads it. */
interface AskedFinding {
  id: string;
  file: string;
  line: number;
  category: string;
  /** The cited code's lines with their new-file numbers; `added` for lines marked `+`. */
  code: Array<{ line: number; text: string; added: boolean }>;
}

const FINDING_LINE = /^Finding (F\d+): (.*?)(?::(\d+)| \(whole file\)) \[(\w+)\] (.*)$/;
const CODE_LINE = /^ *(\d+) ([+ ]) (.*)$/;

/** The findings of a verifier user message (`verifyMessage`): id, place, category and cited code. */
export function findingsFromVerifyPrompt(prompt: string): AskedFinding[] {
  const out: AskedFinding[] = [];
  let current: AskedFinding | undefined;
  let inCode = false;
  for (const line of prompt.split('\n')) {
    const f = FINDING_LINE.exec(line);
    if (f) {
      current = { id: f[1] as string, file: f[2] as string, line: Number(f[3] ?? 0), category: (f[5] ?? '').trim(), code: [] };
      out.push(current);
      inCode = false;
      continue;
    }
    if (!current) continue;
    if (line === 'Code:') {
      inCode = true;
      continue;
    }
    if (!inCode) continue;
    const c = CODE_LINE.exec(line);
    if (c) current.code.push({ line: Number(c[1]), text: c[3] ?? '', added: c[2] === '+' });
    else if (!/^ *\(\d+\) - /.test(line)) inCode = false;
  }
  return out;
}

/**
 * The offline model's verdicts for a verifier prompt: a finding is confirmed when the offline
 * review rules of its category, applied to the code it cites, report a problem on its line (any line
 * of the cited code for a file-level finding); otherwise it is not confirmed, with the reason.
 * Deterministic, like the offline reviewer: a finding the rules made is confirmed, one they did not
 * make (a wrong line, an invented problem) is not.
 */
export function offlineVerdicts(prompt: string): { verdicts: Array<{ id: string; confirmed: boolean; reason: string }> } {
  return {
    verdicts: findingsFromVerifyPrompt(prompt).map((f) => {
      let previous = '';
      const entry: AddedLines = { file: f.file, added: [] };
      for (const c of f.code) {
        if (c.added) entry.added.push({ line: c.line, text: c.text, previous });
        previous = c.text;
      }
      const found = reviewAdded([entry], [f.category]);
      const confirmed = found.some((r) => f.line === 0 || r.line === f.line);
      return {
        id: f.id,
        confirmed,
        reason: confirmed
          ? `The offline ${f.category} rules find this problem at the cited line.`
          : f.code.length === 0
            ? 'The finding cites no code of the change.'
            : `The offline ${f.category} rules find no such problem in the cited code${f.line > 0 ? ` at line ${f.line}` : ''}.`,
      };
    }),
  };
}
