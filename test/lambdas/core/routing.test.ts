import { describe, expect, it } from 'vitest';
import type { ModelRef } from '../../../lambdas/core/contracts.js';
import { routeModel } from '../../../lambdas/core/routing.js';

const model = (alias: string): ModelRef => ({ provider: 'bedrock', alias, modelId: alias, contextWindow: 200_000, price: null });
const auto = { simple: model('claude-haiku'), medium: model('claude-sonnet'), complex: model('claude-opus') };

describe('Function: routeModel', () => {
  it.each([
    ['medium', 12, 'claude-haiku', /small change \(12 ≤ 50 lines\): one tier down/],
    ['medium', 200, 'claude-sonnet', /200 changed lines: declared tier/],
    ['medium', 900, 'claude-opus', /large change \(900 > 500 lines\): one tier up/],
    ['simple', 5, 'claude-haiku', /small change/],
    ['complex', 2000, 'claude-opus', /large change/],
  ] as const)('routes a %s agent on a %i-line change to %s and says why', (complexity, lines, alias, why) => {
    const r = routeModel({ auto, complexity }, { linesChanged: lines });
    expect(r?.model.alias).toBe(alias);
    expect(r?.reason).toMatch(new RegExp(`^auto → ${alias} \\(\\w+\\): agent complexity ${complexity}, `));
    expect(r?.reason).toMatch(why);
  });

  it('leaves agents with a named model alone', () => {
    expect(routeModel({ complexity: 'medium' }, { linesChanged: 10 })).toBeUndefined();
  });
});
