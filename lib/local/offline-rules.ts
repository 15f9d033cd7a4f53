/**
 * The offline model's "reasoning": deterministic rules over the added lines of a diff, grouped by
 * the categories an agent asks for. Each rule is a pattern on an added line of a file type; the
 * testing rule looks at the change as a whole.
 */
export interface OfflineFinding {
  file: string;
  line: number;
  severity: 'critical' | 'high' | 'medium' | 'low' | 'info';
  category: string;
  message: string;
  suggestion: string;
  /** The fixed line, when the rule knows it exactly (a one-click suggestion on the pull request). */
  replacement?: string;
}

interface LineRule {
  category: string;
  files: RegExp;
  pattern: RegExp;
  severity: OfflineFinding['severity'];
  message: string;
  suggestion: string;
  /** The line fixed, when the fix is mechanical. */
  fix?: (line: string) => string;
}

const SWIFT = /\.(swift)$/;
const KOTLIN = /\.(kt|kts)$/;
const MOBILE = /\.(swift|m|mm|h|kt|kts|java)$/;
const ANY = /./;

const RULES: readonly LineRule[] = [
  {
    category: 'correctness',
    files: SWIFT,
    pattern: /\btry!|\bas!|[\w)\]]!(?=[.\s,)\]␍]|$)(?!=)/,
    severity: 'high',
    message: 'Force unwrap, `try!` or `as!` crashes the app when the value is nil or the call throws.',
    suggestion: 'Use `guard let` / `if let`, `try?` with a fallback, or `do/catch`, and handle the failure path.',
  },
  {
    category: 'correctness',
    files: KOTLIN,
    pattern: /!!/,
    severity: 'high',
    message: '`!!` throws a NullPointerException when the value is null.',
    suggestion: 'Use `?.let { }`, `?:` with a default or an early return, or make the type non-null upstream.',
  },
  {
    category: 'performance',
    files: SWIFT,
    pattern: /DispatchQueue\.main\.sync/,
    severity: 'high',
    message: '`DispatchQueue.main.sync` deadlocks when called from the main thread.',
    suggestion: 'Use `DispatchQueue.main.async` or mark the caller `@MainActor`.',
  },
  {
    category: 'performance',
    files: KOTLIN,
    pattern: /GlobalScope\.(launch|async)|runBlocking\s*[{(]/,
    severity: 'medium',
    message: '`GlobalScope` / `runBlocking` outlive the screen or block the calling thread.',
    suggestion: 'Launch in `viewModelScope` or `lifecycleScope`, and use suspend functions instead of `runBlocking`.',
  },
  {
    category: 'quality',
    files: MOBILE,
    pattern: /\b(print|NSLog|println|debugPrint)\s*\(|\bLog\.[dv]\s*\(/,
    severity: 'low',
    message: 'Debug logging left in the change; it ships to users and may log personal data.',
    suggestion: 'Remove it or use `Logger`/`os_log` (iOS) or Timber with a release tree (Android).',
  },
  {
    category: 'quality',
    files: ANY,
    pattern: /\b(TODO|FIXME|HACK|XXX)\b/,
    severity: 'info',
    message: 'A TODO/FIXME ships with this change.',
    suggestion: 'Finish it in this pull request or link a ticket that tracks it.',
  },
  {
    category: 'security',
    files: ANY,
    pattern: /\[REDACTED:[a-z-]+\]/,
    severity: 'critical',
    message: 'A credential is committed in source code (AgentFlow redacted it before review).',
    suggestion: 'Rotate the credential now, remove it from history, and load it from the Keychain / Android Keystore or a backend.',
  },
  {
    category: 'security',
    files: ANY,
    pattern: /["']http:\/\/(?!localhost|127\.0\.0\.1)/,
    severity: 'medium',
    message: 'Cleartext `http://` URL: traffic can be read and changed on the network.',
    suggestion: 'Use `https://`; App Transport Security and Android network security config block cleartext by default.',
    fix: (line) => line.replace(/(["'])http:\/\/(?!localhost|127\.0\.0\.1)/g, '$1https://'),
  },
  {
    category: 'security',
    files: MOBILE,
    pattern: /(UserDefaults|SharedPreferences|putString)\b.*(token|password|secret|session)/i,
    severity: 'high',
    message: 'A token or password is stored in plain preferences.',
    suggestion: 'Store it in the Keychain (iOS) or EncryptedSharedPreferences / DataStore with Keystore (Android).',
  },
  {
    category: 'security',
    files: ANY,
    pattern: /NSAllowsArbitraryLoads|usesCleartextTraffic\s*=\s*"true"/,
    severity: 'high',
    message: 'Cleartext traffic is allowed for the whole app.',
    suggestion: 'Remove the exception, or scope it to the one domain that needs it.',
  },
  {
    category: 'architecture',
    files: /(View|ViewController|Screen|Activity|Fragment)\.(swift|kt)$/,
    pattern: /URLSession\.shared|Retrofit\.Builder|OkHttpClient\(/,
    severity: 'medium',
    message: 'The UI layer talks to the network directly.',
    suggestion: 'Move the call into a repository used through the view model, so it can be tested and reused.',
  },
  {
    category: 'documentation',
    files: SWIFT,
    pattern: /^\s*(public|open)\s+(func|class|struct|protocol|enum|var|let|init)\b/,
    severity: 'low',
    message: 'A public declaration is added without a `///` doc comment.',
    suggestion: 'Add a `///` comment that says what it does, its parameters, what it throws and its threading.',
  },
  {
    category: 'documentation',
    files: KOTLIN,
    pattern: /^\s*(fun|class|interface|object|data class)\s+[A-Z]?\w+/,
    severity: 'low',
    message: 'A public Kotlin declaration is added without a KDoc comment.',
    suggestion: 'Add a `/** ... */` KDoc that says what it does, its parameters and its threading.',
  },
];

/** One file's added lines with their line numbers in the new file. */
export interface AddedLines {
  file: string;
  added: Array<{ line: number; text: string; previous: string }>;
}

/**
 * An added or context line in the numbered layout of the prompts (`renderFile`): the new-file
 * number right-aligned, a space, the marker (`+` or a space), a space, the code. A removed line
 * shows `(old number) - ` and matches neither.
 */
const NUMBERED_LINE = /^ *(\d+) ([+ ]) ([^\n]*)$/;

/**
 * Reads the `### path (...)` + ```diff blocks of a prompt into added lines per file, taking each
 * line's number from the prompt's numbered layout as a model does (see `renderFile`).
 */
export function addedLinesFromPrompt(prompt: string): AddedLines[] {
  const out: AddedLines[] = [];
  const blocks = prompt.split(/^### /m).slice(1);
  for (const block of blocks) {
    // `### <path> (<status>, +a -d)` or `(<status>, part N)`: the path may hold spaces and parentheses.
    const first = block.split('\n', 1)[0] ?? '';
    const file = first.replace(/ \((?:renamed from .*|[a-z-]+)(?:, \+\d+ -\d+|, part \d+)?\)$/, '');
    if (!file) continue;
    const entry: AddedLines = { file, added: [] };
    let previous = '';
    for (const l of block.split('\n').slice(1)) {
      const m = NUMBERED_LINE.exec(l);
      if (!m) continue;
      const text = m[3] ?? '';
      if (m[2] === '+') entry.added.push({ line: Number(m[1]), text, previous });
      previous = text;
    }
    out.push(entry);
  }
  return out;
}

const isTestFile = (f: string) => /(Tests?\/|\/test\/|Test\.(swift|kt)$|Tests\.swift$|Spec\.(swift|kt)$)/.test(f);
const isSource = (f: string) => /\.(swift|kt|m|java)$/.test(f) && !isTestFile(f);

/** Applies the rules of `categories` to the files in `prompt`. Deterministic: same input, same findings. */
export function reviewPrompt(prompt: string, categories: readonly string[]): OfflineFinding[] {
  return reviewAdded(addedLinesFromPrompt(prompt), categories);
}

/** Applies the rules of `categories` to added lines (see {@link reviewPrompt}); the offline verifier re-checks cited code with it. */
export function reviewAdded(files: readonly AddedLines[], categories: readonly string[]): OfflineFinding[] {
  const findings: OfflineFinding[] = [];
  for (const { file, added } of files) {
    for (const rule of RULES) {
      if (!categories.includes(rule.category) || !rule.files.test(file)) continue;
      for (const { line, text, previous } of added) {
        if (!rule.pattern.test(text)) continue;
        if (rule.category === 'documentation' && /^\s*(\/\/\/|\*|\/\*\*|\*\/)/.test(previous)) continue;
        if (/^\s*(\/\/|\*)/.test(text) && rule.category !== 'quality') continue;
        findings.push({
          file,
          line,
          severity: rule.severity,
          category: rule.category,
          message: rule.message,
          suggestion: rule.suggestion,
          ...(rule.fix ? { replacement: rule.fix(text) } : {}),
        });
      }
    }
  }
  if (categories.includes('testing')) {
    const changedTests = files.some((f) => isTestFile(f.file));
    for (const { file, added } of files) {
      if (!isSource(file) || added.length === 0 || changedTests) continue;
      const first = added[0];
      findings.push({
        file,
        line: first?.line ?? 0,
        severity: 'medium',
        category: 'testing',
        message: `${added.length} added lines in ${file} have no test in this change.`,
        suggestion: /\.swift$/.test(file)
          ? `Add an XCTest case (for example \`${file.split('/').pop()?.replace('.swift', 'Tests')}\`) for the new behaviour, including its error path.`
          : `Add a JUnit test (for example \`${file
              .split('/')
              .pop()
              ?.replace(/\.(kt|java)$/, 'Test')}\`) for the new behaviour, including its error path.`,
      });
    }
  }
  return findings;
}
