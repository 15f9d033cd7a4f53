import { describe, expect, it } from 'vitest';
import { APPROVER_PREFIX } from '../../lambdas/core/approvals.js';
import { FORGES } from '../../lambdas/core/contracts.js';
import { CHANGE_EVENTS, FORGE_CHANGE_EVENT } from '../../lambdas/core/triggers.js';
import { cloudChangeSource, cloudPublishers } from '../../lambdas/shared/forges.js';
import { INGRESS_ROUTES } from '../../lambdas/webhook/routes.js';

/**
 * Forges are exhaustive tables (`Record<Forge, …>`), so a forge added to FORGES does not compile
 * until it is wired; this ties the tables' contents to FORGES at run time as well.
 */
describe('Forges: every forge is wired in every layer', () => {
  it('has a webhook route, a publisher, an approver prefix and a change event per forge', () => {
    for (const forge of FORGES) {
      expect(INGRESS_ROUTES).toContain(`/webhooks/${forge}`);
      expect(Object.keys(cloudPublishers())).toContain(forge);
      expect(APPROVER_PREFIX[forge]).toBe(`${forge}:`);
      expect(FORGE_CHANGE_EVENT[forge]).toMatch(/^[a-z_]+$/);
      for (const neutral of Object.values(CHANGE_EVENTS)) expect(neutral[forge].length).toBeGreaterThan(0);
    }
  });

  it('builds no forge client before a run on that forge needs it (a GitHub-only environment has no gitlab secret)', () => {
    // No GITHUB_SECRET_NAME / GITLAB_SECRET_NAME here: building the tables reads nothing.
    expect(() => cloudPublishers()).not.toThrow();
    expect(() => cloudChangeSource()).not.toThrow();
  });
});
