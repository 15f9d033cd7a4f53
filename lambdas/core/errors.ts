/**
 * AgentFlow's error classes. Their names are an API: the compiled state machines match them in
 * Retry and Catch (DESIGN §7), so each sets `this.name` explicitly and bundles keep names.
 */
export class AgentFlowError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentFlowError';
  }
}

/** Input that does not match a task's contract. Not retryable. */
export class InvalidInputError extends AgentFlowError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidInputError';
  }
}

/** Base of the errors a model provider call raises. */
export class ProviderError extends AgentFlowError {
  constructor(
    message: string,
    readonly provider: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProviderError';
  }
}

/** The provider throttled the call (HTTP 429, ThrottlingException). Retryable. */
export class ProviderThrottledError extends ProviderError {
  constructor(message: string, provider: string, status?: number, options?: { cause?: unknown }) {
    super(message, provider, status, options);
    this.name = 'ProviderThrottledError';
  }
}

/** The provider failed or could not be reached (HTTP 5xx, connection errors). Retryable. */
export class ProviderUnavailableError extends ProviderError {
  constructor(message: string, provider: string, status?: number, options?: { cause?: unknown }) {
    super(message, provider, status, options);
    this.name = 'ProviderUnavailableError';
  }
}

/** The call did not finish in time. Retryable. */
export class ProviderTimeoutError extends ProviderError {
  constructor(message: string, provider: string, status?: number, options?: { cause?: unknown }) {
    super(message, provider, status, options);
    this.name = 'ProviderTimeoutError';
  }
}

/**
 * The provider refused the request (HTTP 400: content policy, context too long) or its answer
 * stayed invalid after the repair prompt. Not retryable.
 */
export class ProviderRejectedError extends ProviderError {
  constructor(message: string, provider: string, status?: number, options?: { cause?: unknown }) {
    super(message, provider, status, options);
    this.name = 'ProviderRejectedError';
  }
}

/** The provider refused our credentials (HTTP 401/403). Not retryable. */
export class ProviderAuthError extends ProviderError {
  constructor(message: string, provider: string, status?: number, options?: { cause?: unknown }) {
    super(message, provider, status, options);
    this.name = 'ProviderAuthError';
  }
}

/** Which budget a refusal or reservation concerns (DESIGN §6). */
export type BudgetScopeKind = 'run' | 'project-day' | 'project-month' | 'global-month';

/**
 * A provider call was not made because its worst-case cost would pass a budget. Not retryable.
 * Amounts are USD; `committedUsd` is settled spend plus open reservations in that scope.
 */
export class BudgetExceededError extends AgentFlowError {
  constructor(
    readonly scope: BudgetScopeKind,
    /** The scope's key, e.g. `project#ios-app#day#2026-11-21`. */
    readonly scopeKey: string,
    readonly limitUsd: number,
    readonly committedUsd: number,
    readonly estimateUsd: number,
    /**
     * True when the settled spend alone leaves room for the call and only reservations of calls in
     * flight fill the limit: the refusal may clear when they settle (the gateway waits for that).
     */
    readonly transient = false,
  ) {
    super(
      `budget ${scopeKey}: limit $${limitUsd.toFixed(2)}, committed $${committedUsd.toFixed(6)}, ` +
        `this call may cost up to $${estimateUsd.toFixed(6)}; no call was made`,
    );
    this.name = 'BudgetExceededError';
  }
}

/** The budget table could not be read or written, so no call was made (fail closed). Not retryable. */
export class BudgetUnavailableError extends AgentFlowError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BudgetUnavailableError';
  }
}

/** Every candidate provider's circuit breaker is open (or half-open with a probe in flight). Not retryable. */
export class CircuitOpenError extends AgentFlowError {
  constructor(message: string) {
    super(message);
    this.name = 'CircuitOpenError';
  }
}

/** A model has no price in models.yml, so its cost cannot be bounded: no call is made. Not retryable. */
export class PriceUnknownError extends AgentFlowError {
  constructor(message: string) {
    super(message);
    this.name = 'PriceUnknownError';
  }
}

/**
 * An approval request could not be posted where the workflow asks (Slack answered
 * `not_in_channel`, `channel_not_found`, `is_archived`…): the gate ends with this reason instead of
 * failing the run. Not retryable.
 */
export class ApprovalUndeliverableError extends AgentFlowError {
  constructor(message: string) {
    super(message);
    this.name = 'ApprovalUndeliverableError';
  }
}

/**
 * Generated files were to be pushed to the branch of a pull request that comes from a fork (or
 * one not known not to): AgentFlow never writes to a fork. Not retryable; the workflow's
 * `push_to_pr: false` (the default) commits to a branch of the base repository instead.
 */
export class ForkPushRefusedError extends AgentFlowError {
  constructor(message: string) {
    super(message);
    this.name = 'ForkPushRefusedError';
  }
}

/** Retryable error names, as the compiler's Retry lists them. */
export const RETRYABLE_ERROR_NAMES = ['ProviderThrottledError', 'ProviderUnavailableError', 'ProviderTimeoutError'];
