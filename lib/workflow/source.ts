/** The YAML source positions and `file:line:col` diagnostics (shared with the Lambdas: see `lambdas/core/yaml-source.ts`). */
export * from '../../lambdas/core/yaml-source.js';
