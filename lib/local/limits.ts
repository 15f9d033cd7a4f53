/**
 * Local runtime defaults light enough for every CLI start (`agentflow serve --help` shows them
 * without loading the runtime).
 */

/** Executions `agentflow serve` runs at once; later ones wait (RUNNING) for a free place. */
export const DEFAULT_MAX_CONCURRENT_RUNS = 8;
