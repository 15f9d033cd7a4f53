import type { TeamDirectory } from '../core/approvals.js';
import type { Change } from '../core/contracts.js';
import type { ChangeLookup } from '../core/ports.js';
import { assertSafeRef } from '../core/refs.js';
import { refsChange } from './changes.js';
import { type GitLabClient, gitLabStatus } from './gitlab-changes.js';

/**
 * GitLab's Developer access level: the least that may push and review a merge request. Levels: 10
 * Guest, 15 Planner, 20 Reporter, 30 Developer, 40 Maintainer, 50 Owner.
 * Source: https://docs.gitlab.com/api/members/#roles (read 2026-11).
 */
export const DEVELOPER_ACCESS = 30;

/** The SHAs of a merge request's current diff (`diff_refs`): what its discussions are positioned on. */
export interface DiffRefs {
  baseSha: string;
  startSha: string;
  headSha: string;
}

/**
 * Merge requests, refs, accounts and groups on the GitLab REST API through `@gitbeaker/rest`:
 * {@link ChangeLookup} for `/agentflow review` and `agentflow run`, the diff refs the webhook puts in
 * a change, project access and group membership.
 *
 * @throws GitbeakerRequestError when GitLab refuses a call ({@link gitLabStatus} reads its status),
 *   or a request error when the instance does not answer (`queryTimeout` of the client)
 * @example
 * const lookup = new GitLabChangeLookup(gitlab);
 * await lookup.pullRequest('acme/shop', 42); // { forge: 'gitlab', repository: 'acme/shop', number: 42, baseSha, startSha, headSha, … }
 */
export class GitLabChangeLookup implements ChangeLookup {
  constructor(private readonly gitlab: GitLabClient) {}

  /**
   * Merge request `iid` of project `repository` (its full path) with its current `diff_refs`.
   * GitLab computes a new diff asynchronously after a push: a merge request whose `diff_refs` are
   * not there yet is an error (the webhook answers 503 and GitLab redelivers).
   * Source: https://docs.gitlab.com/api/merge_requests/#get-single-mr (read 2026-11).
   * @throws Error when the merge request has no diff refs yet
   */
  async pullRequest(repository: string, iid: number): Promise<Change> {
    const mr = await this.gitlab.MergeRequests.show(repository, iid);
    const refs = mr.diff_refs as { base_sha?: string | null; start_sha?: string | null; head_sha?: string | null } | null | undefined;
    if (!refs?.base_sha || !refs.head_sha) throw new Error(`merge request !${iid} of ${repository} has no diff yet`);
    return {
      forge: 'gitlab',
      repository,
      number: iid,
      title: String(mr.title ?? ''),
      author: String((mr.author as { username?: string } | null)?.username ?? ''),
      url: String(mr.web_url ?? ''),
      action: 'manual',
      baseSha: refs.base_sha,
      startSha: refs.start_sha || refs.base_sha,
      headSha: refs.head_sha,
      baseRef: String(mr.target_branch ?? ''),
      headRef: String(mr.source_branch ?? ''),
      fork: mr.source_project_id !== mr.target_project_id,
    };
  }

  /** The diff refs of merge request `iid` (see {@link pullRequest}) and its author's username. */
  async diffRefs(repository: string, iid: number): Promise<DiffRefs & { author: string }> {
    const c = await this.pullRequest(repository, iid);
    return { baseSha: c.baseSha, startSha: c.startSha ?? c.baseSha, headSha: c.headSha, author: c.author };
  }

  /**
   * Two refs of `repository` as a change without a merge request (`number: 0`): the head's SHA and
   * the merge base of both (`GET /projects/:id/repository/merge_base`).
   * Source: https://docs.gitlab.com/api/repositories/#merge-base (read 2026-11).
   * @throws InvalidInputError when a ref is not a safe ref name
   * @throws Error `no commit "<ref>" in <project>` when a ref does not resolve
   */
  async refs(repository: string, base: string, head: string): Promise<Change> {
    assertSafeRef(base);
    assertSafeRef(head);
    const sha = async (ref: string) => {
      try {
        return String((await this.gitlab.Commits.show(repository, ref)).id);
      } catch (e) {
        if (gitLabStatus(e) === 404) throw new Error(`no commit ${JSON.stringify(ref)} in ${repository}`);
        throw e;
      }
    };
    const headSha = await sha(head);
    await sha(base);
    const mergeBase = String((await this.gitlab.Repositories.mergeBase(repository, [base, headSha])).id);
    return refsChange(repository, base, head, mergeBase, headSha, 'gitlab');
  }

  /**
   * Whether user `userId` has at least Developer access ({@link DEVELOPER_ACCESS}) to `repository`,
   * inherited membership included (`GET /projects/:id/members/all/:user_id`); false when not a member.
   * Source: https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members (read 2026-11).
   */
  async canWrite(repository: string, userId: number): Promise<boolean> {
    try {
      const m = await this.gitlab.ProjectMembers.show(repository, userId, { includeInherited: true });
      return Number(m.access_level) >= DEVELOPER_ACCESS;
    } catch (e) {
      if (gitLabStatus(e) === 404) return false;
      throw e;
    }
  }
}

/**
 * {@link TeamDirectory} on GitLab groups: whether `username` is a member of group `path`
 * (`acme/mobile/leads`), inherited membership included. The username is looked up first
 * (`GET /users?username=`); an unknown user or group is not a member.
 * Sources: https://docs.gitlab.com/api/users/#list-users and
 * https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members (read 2026-11).
 */
export class GitLabGroupDirectory implements TeamDirectory {
  constructor(private readonly gitlab: GitLabClient) {}

  async isMember(group: string, username: string): Promise<boolean> {
    const users = await this.gitlab.Users.all({ username, maxPages: 1, perPage: 1 });
    const id = users[0]?.id;
    if (typeof id !== 'number') return false;
    try {
      const m = await this.gitlab.GroupMembers.show(group, id, { includeInherited: true });
      // A blocked or awaiting member is not active: https://docs.gitlab.com/api/members/ (state).
      return (m as { state?: string }).state === undefined || (m as { state?: string }).state === 'active';
    } catch (e) {
      if (gitLabStatus(e) === 404) return false;
      throw e;
    }
  }
}
