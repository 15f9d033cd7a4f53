import type { Provider } from './schema.js';

/** Token prices of a model in USD per million tokens. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

/** A model reference resolved against `workflows/models.yml`. */
export interface ResolvedModel {
  readonly provider: Provider;
  /** The alias in models.yml, e.g. `claude-sonnet`. */
  readonly alias: string;
  /** The provider's model id (a Bedrock inference profile id or an OpenAI model name). */
  readonly modelId: string;
  /** Tokens the model accepts in one request (prompt + answer). */
  readonly contextWindow: number;
  /** `null` when models.yml gives no price: the gateway then never calls the model. */
  readonly price: ModelPrice | null;
}

/**
 * One agent as it runs in a phase: its catalog entry merged with the workflow's overrides.
 * This is the Map state's item, so it is kept small (the prompt is a few KB at most).
 */
export interface ResolvedAgent {
  readonly name: string;
  readonly model: ResolvedModel;
  readonly fallback: readonly ResolvedModel[];
  /** Upper bound on answer tokens per call. */
  readonly maxTokens: number;
  readonly temperature: number;
  readonly categories: readonly string[];
  readonly tasks: readonly string[];
  readonly prompt: string;
  /** Use the gateway's response cache. */
  readonly cache: boolean;
  /** The agent's declared complexity: the tier `model: auto` starts from. */
  readonly complexity: 'simple' | 'medium' | 'complex';
  /** For `model: auto`: the provider's tier models; InvokeAgent picks one by the change size. */
  readonly auto?: { readonly simple: ResolvedModel; readonly medium: ResolvedModel; readonly complex: ResolvedModel };
}

/** A numeric comparison from a condition such as `lines_changed: "> 100"`. */
export interface Comparison {
  readonly op: '>' | '>=' | '<' | '<=' | '==';
  readonly value: number;
}

/** A phase of agents run as one Map state. */
export interface AgentPhase {
  readonly kind: 'agents';
  readonly name: string;
  readonly dependsOn: readonly string[];
  /** `false` runs the agents one after another (MaxConcurrency 1). */
  readonly parallel: boolean;
  /** When true, a failed agent fails the run. */
  readonly required: boolean;
  readonly maxConcurrency: number;
  readonly agents: readonly ResolvedAgent[];
}

/** The normalised, checked workflow the compiler consumes. */
export interface Workflow {
  /** The file name without `.yml`; names the state machine. */
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly trigger: {
    /** `pull_request.<action>` or `manual`. */
    readonly events: readonly string[];
    readonly filesChanged?: readonly string[];
    readonly linesChanged?: Comparison;
    readonly testCoverage?: Comparison;
  };
  readonly budget: { readonly maxUsdPerRun?: number; readonly project?: string };
  readonly phases: readonly AgentPhase[];
  readonly output: {
    readonly githubReview: boolean;
    readonly slack?: string;
    readonly databaseLog: boolean;
    readonly createFiles: boolean;
  };
  /** Channel to notify when the run fails (from the older `fallback: - notify:` rule). */
  readonly notifyOnFailure?: string;
}

/** The agent catalog and the model catalog a workflow is checked against. */
export interface Catalog {
  readonly agents: ReadonlyMap<string, import('./schema.js').AgentSpec>;
  readonly models: import('./schema.js').ModelCatalog;
}
