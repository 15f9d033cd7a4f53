import type { Octokit } from '@octokit/rest';
import type { Change } from '../core/contracts.js';
import type { ArtifactStore, CommentPublisher } from '../core/ports.js';
import { splitRepository } from '../core/triggers.js';

/**
 * The pull-request comment on GitHub: updates the comment that carries the marker, or creates
 * one (`GET/POST /repos/{o}/{r}/issues/{n}/comments`, `PATCH .../issues/comments/{id}`).
 */
export class GitHubCommentPublisher implements CommentPublisher {
  constructor(private readonly octokit: Octokit) {}

  async upsertComment(change: Change, marker: string, body: string): Promise<string | null> {
    const { owner, repo } = splitRepository(change.repository);
    const comments = await this.octokit.paginate(this.octokit.rest.issues.listComments, {
      owner,
      repo,
      issue_number: change.number,
      per_page: 100,
    });
    const mine = comments.find((c) => c.body?.includes(marker));
    if (mine) {
      const r = await this.octokit.rest.issues.updateComment({ owner, repo, comment_id: mine.id, body });
      return r.data.html_url;
    }
    const r = await this.octokit.rest.issues.createComment({ owner, repo, issue_number: change.number, body });
    return r.data.html_url;
  }
}

/**
 * Local mode: the comment is written to `comments/<owner>/<repo>/<number>/<marker>.md` in the
 * artifact folder (the same file again for the same pull request and workflow) and `onComment`
 * is told (the CLI prints it).
 */
export class FileCommentPublisher implements CommentPublisher {
  constructor(
    private readonly artifacts: ArtifactStore & { pathOf?: (key: string) => string },
    private readonly onComment?: (body: string, path: string) => void,
  ) {}

  async upsertComment(change: Change, marker: string, body: string): Promise<string | null> {
    const workflow = /agentflow:([\w.-]+)/.exec(marker)?.[1] ?? 'comment';
    const key = `comments/${change.repository}/${change.number}/${workflow}.md`;
    await this.artifacts.putText(key, body);
    const path = this.artifacts.pathOf ? this.artifacts.pathOf(key) : key;
    this.onComment?.(body, path);
    return path;
  }
}
