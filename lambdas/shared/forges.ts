import { GitHubChangeSource } from '../adapters/changes.js';
import { GitHubPublisher } from '../adapters/comments.js';
import { GitLabChangeSource } from '../adapters/gitlab-changes.js';
import { GitLabPublisher } from '../adapters/gitlab-publisher.js';
import type { CheckResult } from '../core/checks.js';
import { type Change, type ChangedFile, type Forge, forgeOf } from '../core/contracts.js';
import type {
  ChangeSource,
  CheckCreate,
  CommitRequest,
  CommittedFiles,
  FindingFeedback,
  ForgePublisher,
  ForgeTable,
  PostedReview,
} from '../core/ports.js';
import type { InlineReview } from '../core/review.js';
import type { SarifLog } from '../core/sarif.js';
import { gitlabClient } from './gitlab.js';
import { githubClient } from './octokit.js';

/**
 * A {@link ForgePublisher} whose client is made on its first call: a Lambda builds every forge's
 * entry of its {@link ForgeTable}, but reads only the secret of the forge a run is on (a GitHub-only
 * environment has no `gitlab` secret). A failed build is retried on the next call.
 */
class LazyPublisher implements ForgePublisher {
  private made: Promise<ForgePublisher> | undefined;
  constructor(private readonly make: () => Promise<ForgePublisher>) {}

  private get(): Promise<ForgePublisher> {
    this.made ??= this.make().catch((e: unknown) => {
      this.made = undefined;
      throw e;
    });
    return this.made;
  }
  async upsertComment(change: Change, marker: string, body: string): Promise<string | null> {
    return (await this.get()).upsertComment(change, marker, body);
  }
  async postReview(change: Change, marker: string, review: InlineReview): Promise<PostedReview> {
    return (await this.get()).postReview(change, marker, review);
  }
  async readFeedback(change: Change): Promise<FindingFeedback[]> {
    return (await this.get()).readFeedback(change);
  }
  async startCheck(change: Change, name: string, runId: string): Promise<void> {
    return (await this.get()).startCheck(change, name, runId);
  }
  async completeCheck(change: Change, name: string, runId: string, result: CheckResult, create: CheckCreate): Promise<string | null> {
    return (await this.get()).completeCheck(change, name, runId, result, create);
  }
  async uploadCodeScanning(change: Change, workflow: string, sarif: SarifLog): Promise<string | null> {
    return (await this.get()).uploadCodeScanning(change, workflow, sarif);
  }
  async commitFiles(change: Change, request: CommitRequest): Promise<CommittedFiles> {
    return (await this.get()).commitFiles(change, request);
  }
}

/** Each forge's publisher in the cloud, its client built from its secret on first use. */
export function cloudPublishers(): ForgeTable {
  return {
    github: new LazyPublisher(async () => new GitHubPublisher(await githubClient())),
    gitlab: new LazyPublisher(async () => new GitLabPublisher(await gitlabClient())),
  };
}

/** Each forge's change source in the cloud (clients built on first use, as {@link cloudPublishers}). */
const CLOUD_CHANGE_SOURCES: Record<Forge, () => Promise<ChangeSource>> = {
  github: async () => new GitHubChangeSource(await githubClient()),
  gitlab: async () => new GitLabChangeSource(await gitlabClient()),
};

/** A {@link ChangeSource} that reads each change from its forge ({@link forgeOf}). */
export function cloudChangeSource(): ChangeSource {
  const of = (change: Change) => CLOUD_CHANGE_SOURCES[forgeOf(change)]();
  return {
    listChangedFiles: async (change: Change): Promise<ChangedFile[]> => (await of(change)).listChangedFiles(change),
    readHeadFile: async (change: Change, path: string) => (await of(change)).readHeadFile(change, path),
  };
}
