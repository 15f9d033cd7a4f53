/** Why the review plan does not review a changed file (see `lambdas/core/plan.ts`). */
export const EXCLUSION_REASONS = [
  'generated',
  'vendored',
  'lock file',
  'translation',
  'binary',
  'LFS pointer',
  'snapshot',
  'submodule',
  'diff too large',
  'removed',
  'excluded by paths',
  'not in paths',
  'no agent reviews it',
  'unchanged since the last review',
  'ignored by .agentflow.yml',
] as const;
export type ExclusionReason = (typeof EXCLUSION_REASONS)[number];
