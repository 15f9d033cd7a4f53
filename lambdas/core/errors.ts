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

/** A phase marked `required` had a failed agent. Fails the run. */
export class RequiredPhaseFailedError extends AgentFlowError {
  constructor(message: string) {
    super(message);
    this.name = 'RequiredPhaseFailedError';
  }
}

/** Retryable error names, as the compiler's Retry lists them. */
export const RETRYABLE_ERROR_NAMES = ['ProviderThrottledError', 'ProviderUnavailableError', 'ProviderTimeoutError'];
