import type { AgentItem, ContextStats, ModelRef, Tier } from './contracts.js';
import { TIERS } from './contracts.js';

/** Changed lines (additions + deletions) up to which a change is small. */
export const SMALL_CHANGE_LINES = 50;
/** Changed lines above which a change is large. */
export const LARGE_CHANGE_LINES = 500;

/** A routing decision: the model and the reason reports show. */
export interface Route {
  readonly model: ModelRef;
  readonly tier: Tier;
  readonly reason: string;
}

/**
 * Model routing for `model: auto`.
 *
 * Rule: start from the agent's declared complexity (simple / medium / complex); a small change
 * (≤ {@link SMALL_CHANGE_LINES} changed lines) moves one tier down, a large one
 * (> {@link LARGE_CHANGE_LINES} lines) one tier up, clamped to simple…complex; the model is the
 * provider's model for that tier in `workflows/models.yml` (`tiers:`).
 *
 * @returns undefined when the agent does not use `model: auto`
 */
export function routeModel(agent: Pick<AgentItem, 'auto' | 'complexity'>, stats: Pick<ContextStats, 'linesChanged'>): Route | undefined {
  if (!agent.auto) return undefined;
  const lines = stats.linesChanged;
  const shift = lines <= SMALL_CHANGE_LINES ? -1 : lines > LARGE_CHANGE_LINES ? 1 : 0;
  const index = Math.min(TIERS.length - 1, Math.max(0, TIERS.indexOf(agent.complexity) + shift));
  const tier = TIERS[index] as Tier;
  const model = agent.auto[tier];
  const size =
    shift < 0
      ? `small change (${lines} ≤ ${SMALL_CHANGE_LINES} lines): one tier down`
      : shift > 0
        ? `large change (${lines} > ${LARGE_CHANGE_LINES} lines): one tier up`
        : `${lines} changed lines: declared tier`;
  return { model, tier, reason: `auto → ${model.alias} (${tier}): agent complexity ${agent.complexity}, ${size}` };
}
