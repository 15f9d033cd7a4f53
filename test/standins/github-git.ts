import { createHash } from 'node:crypto';
import type { GitHubAnswer, GitHubRequest } from './github.js';

type Json = Record<string, unknown>;

const API = 'https://api.github.com';
const HOST = 'https://github.com';
const NOW = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const unprocessable = (message: string, documentation_url: string): GitHubAnswer => ({
  status: 422,
  body: { message, documentation_url, status: '422' },
});
const DOCS = 'https://docs.github.com/rest/git';

/** A commit the stand-in knows: created through the API, or a seeded one (tree made up from its SHA). */
interface StoredCommit {
  readonly sha: string;
  readonly tree: string;
  readonly parents: readonly string[];
  readonly message: string;
}

/**
 * The Git Data API of the GitHub stand-in, with state: blobs (`POST …/git/blobs`), trees on a base
 * tree (`POST …/git/trees`), commits (`POST …/git/commits`, `GET …/git/commits/{sha}`) and branch
 * refs (`POST …/git/refs`: 422 "Reference already exists"; `PATCH …/git/refs/{ref}`: 422 "Update is
 * not a fast forward" without `force`; `GET …/git/ref/{ref}`). A seeded commit (a pull request's
 * head or base, a seeded ref) is known with an empty tree of its own. Responses follow GitHub's
 * shapes (`short-blob`, `git-tree`, `git-commit`, `git-ref`).
 * Source: https://docs.github.com/en/rest/git (2026-11).
 */
export class GitDataStandIn {
  private readonly blobs = new Map<string, string>();
  /** Tree SHA → path → blob SHA (flattened: the stand-in's trees are whole path maps). */
  private readonly trees = new Map<string, Map<string, string>>();
  private readonly commits = new Map<string, StoredCommit>();
  private readonly branches = new Map<string, string>();

  /** `resolve(repo, ref)`: the stand-in's seeded refs and SHAs. */
  constructor(private readonly resolve: (repo: string, ref: string) => string | undefined) {}

  /** The commit a branch points at (`refs/heads/<name>`), created through the API or seeded. */
  branch(repo: string, name: string): string | undefined {
    return this.branches.get(`${repo}:${name}`) ?? this.resolve(repo, name);
  }

  /** A commit and the files of its tree (path → content), or undefined when unknown. */
  commit(repo: string, sha: string): { message: string; parents: readonly string[]; files: Record<string, string> } | undefined {
    const c = this.known(repo, sha);
    if (!c) return undefined;
    const files: Record<string, string> = {};
    for (const [path, blob] of this.trees.get(c.tree) ?? []) files[path] = this.blobs.get(`${repo}@${blob}`) ?? '';
    return { message: c.message, parents: c.parents, files };
  }

  /** The handler of a Git Data operation, or undefined when `operationId` is not one. */
  handler(operationId: string): ((req: GitHubRequest, repo: string) => GitHubAnswer) | undefined {
    const table: Record<string, (req: GitHubRequest, repo: string) => GitHubAnswer> = {
      'git/create-blob': (req, repo) => this.createBlob(req, repo),
      'git/create-tree': (req, repo) => this.createTree(req, repo),
      'git/create-commit': (req, repo) => this.createCommit(req, repo),
      'git/get-commit': (req, repo) => {
        const c = this.known(repo, String(req.params.commit_sha));
        return c ? { status: 200, body: this.commitBody(repo, c) } : { status: 404, body: { message: 'Not Found', status: '404' } };
      },
      'git/create-ref': (req, repo) => this.createRef(req, repo),
      'git/update-ref': (req, repo) => this.updateRef(req, repo),
      'git/get-ref': (req, repo) => {
        const name = String(req.params.ref).replace(/^heads\//, '');
        const sha = this.branches.get(`${repo}:${name}`);
        return sha
          ? { status: 200, body: refBody(repo, `refs/heads/${name}`, sha) }
          : { status: 404, body: { message: 'Not Found', status: '404' } };
      },
    };
    return table[operationId];
  }

  private known(repo: string, sha: string): StoredCommit | undefined {
    const made = this.commits.get(`${repo}@${sha}`);
    if (made) return made;
    const seeded = this.resolve(repo, sha);
    if (seeded !== sha) return undefined;
    const tree = sha1(`tree:${sha}`);
    if (!this.trees.has(tree)) this.trees.set(tree, new Map());
    return { sha, tree, parents: [], message: `seeded commit ${sha.slice(0, 7)}` };
  }

  private createBlob(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as { content: string; encoding?: string };
    const content = body.encoding === 'base64' ? Buffer.from(body.content, 'base64').toString('utf8') : body.content;
    const sha = sha1(`blob ${Buffer.byteLength(content)}\0${content}`);
    this.blobs.set(`${repo}@${sha}`, content);
    return { status: 201, body: { url: `${API}/repos/${repo}/git/blobs/${sha}`, sha } };
  }

  private createTree(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as {
      base_tree?: string;
      tree: Array<{ path?: string; mode?: string; type?: string; sha?: string | null; content?: string }>;
    };
    const base = body.base_tree ? this.trees.get(body.base_tree) : new Map<string, string>();
    if (!base) return unprocessable('base_tree is not a valid tree', `${DOCS}/trees#create-a-tree`);
    const entries = new Map(base);
    for (const e of body.tree) {
      if (!e.path) return unprocessable('tree.path is missing', `${DOCS}/trees#create-a-tree`);
      if (e.sha === null) entries.delete(e.path);
      else if (e.sha) {
        if (!this.blobs.has(`${repo}@${e.sha}`))
          return unprocessable(`tree.sha ${e.sha} is not a valid blob`, `${DOCS}/trees#create-a-tree`);
        entries.set(e.path, e.sha);
      } else if (e.content !== undefined) {
        const made = this.createBlob({ ...req, body: { content: e.content } }, repo).body as { sha: string };
        entries.set(e.path, made.sha);
      }
    }
    const sha = sha1(
      `tree:${[...entries]
        .sort()
        .map(([p, b]) => `${p}=${b}`)
        .join('\n')}`,
    );
    this.trees.set(sha, entries);
    return {
      status: 201,
      body: {
        sha,
        url: `${API}/repos/${repo}/git/trees/${sha}`,
        truncated: false,
        tree: [...entries].map(([path, blob]) => ({
          path,
          mode: '100644',
          type: 'blob',
          sha: blob,
          size: Buffer.byteLength(this.blobs.get(`${repo}@${blob}`) ?? ''),
          url: `${API}/repos/${repo}/git/blobs/${blob}`,
        })),
      },
    };
  }

  private createCommit(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as { message: string; tree: string; parents?: string[] };
    if (!this.trees.has(body.tree)) return unprocessable('Tree SHA does not exist', `${DOCS}/commits#create-a-commit`);
    for (const p of body.parents ?? []) {
      if (!this.known(repo, p))
        return unprocessable('Parent SHA does not exist or is not a commit object', `${DOCS}/commits#create-a-commit`);
    }
    const sha = sha1(`commit:${body.tree}:${(body.parents ?? []).join(',')}:${body.message}:${this.commits.size}`);
    const c: StoredCommit = { sha, tree: body.tree, parents: body.parents ?? [], message: body.message };
    this.commits.set(`${repo}@${sha}`, c);
    return { status: 201, body: this.commitBody(repo, c) };
  }

  private createRef(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as { ref: string; sha: string };
    const name = /^refs\/heads\/(.+)$/.exec(body.ref)?.[1];
    if (!name)
      return unprocessable('Reference name must start with refs/ and have at least two slashes.', `${DOCS}/refs#create-a-reference`);
    if (this.branch(repo, name)) return unprocessable('Reference already exists', `${DOCS}/refs#create-a-reference`);
    if (!this.known(repo, body.sha)) return unprocessable('Object does not exist', `${DOCS}/refs#create-a-reference`);
    this.branches.set(`${repo}:${name}`, body.sha);
    return { status: 201, body: refBody(repo, body.ref, body.sha) };
  }

  private updateRef(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as { sha: string; force?: boolean };
    const name = String(req.params.ref).replace(/^heads\//, '');
    const current = this.branch(repo, name);
    if (!current) return unprocessable('Reference does not exist', `${DOCS}/refs#update-a-reference`);
    if (!this.known(repo, body.sha)) return unprocessable('Object does not exist', `${DOCS}/refs#update-a-reference`);
    if (!body.force && !this.descends(repo, body.sha, current)) {
      return unprocessable('Update is not a fast forward', `${DOCS}/refs#update-a-reference`);
    }
    this.branches.set(`${repo}:${name}`, body.sha);
    return { status: 200, body: refBody(repo, `refs/heads/${name}`, body.sha) };
  }

  /** Whether `sha` is `ancestor` or has it among its ancestors. */
  private descends(repo: string, sha: string, ancestor: string): boolean {
    const todo = [sha];
    const seen = new Set<string>();
    while (todo.length > 0) {
      const s = todo.pop() as string;
      if (s === ancestor) return true;
      if (seen.has(s)) continue;
      seen.add(s);
      todo.push(...(this.commits.get(`${repo}@${s}`)?.parents ?? []));
    }
    return false;
  }

  private commitBody(repo: string, c: StoredCommit): Json {
    const person = { name: 'AgentFlow', email: 'agentflow@example.com', date: NOW() };
    return {
      sha: c.sha,
      node_id: `C_${c.sha.slice(0, 12)}`,
      url: `${API}/repos/${repo}/git/commits/${c.sha}`,
      html_url: `${HOST}/${repo}/commit/${c.sha}`,
      author: person,
      committer: person,
      message: c.message,
      tree: { sha: c.tree, url: `${API}/repos/${repo}/git/trees/${c.tree}` },
      parents: c.parents.map((p) => ({ sha: p, url: `${API}/repos/${repo}/git/commits/${p}`, html_url: `${HOST}/${repo}/commit/${p}` })),
      verification: { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null },
    };
  }
}

/** A `git-ref` body. */
function refBody(repo: string, ref: string, sha: string): Json {
  return {
    ref,
    node_id: `REF_${sha1(ref).slice(0, 12)}`,
    url: `${API}/repos/${repo}/git/${ref}`,
    object: { type: 'commit', sha, url: `${API}/repos/${repo}/git/commits/${sha}` },
  };
}
