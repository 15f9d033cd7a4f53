import type { Octokit } from '@octokit/rest';
import type { TeamDirectory } from '../core/approvals.js';

/**
 * {@link TeamDirectory} on the GitHub REST API: `GET /orgs/{org}/teams/{team_slug}/memberships/{username}`
 * (active membership counts; pending invitations and 404 do not). The token needs `read:org`.
 * Source: https://docs.github.com/en/rest/teams/members#get-team-membership-for-a-user (2026-11)
 */
export class GitHubTeamDirectory implements TeamDirectory {
  constructor(private readonly octokit: Octokit) {}

  async isMember(team: string, login: string): Promise<boolean> {
    const [org, slug] = team.split('/');
    if (!org || !slug) return false;
    try {
      const r = await this.octokit.rest.teams.getMembershipForUserInOrg({ org, team_slug: slug, username: login });
      return r.data.state === 'active';
    } catch (e) {
      if ((e as { status?: number }).status === 404) return false;
      throw e;
    }
  }
}
