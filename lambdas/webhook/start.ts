import type { Change, ExecutionInput } from '../core/contracts.js';
import {
  bodyBytes,
  type HttpRequest,
  type HttpResponse,
  json,
  lowerHeaders,
  MAX_BODY_BYTES,
  mediaType,
  rawBody,
  UNAUTHORIZED,
  withDeadline,
} from '../core/http.js';
import type { DeliveryGuard, ExecutionStarter } from '../core/ports.js';
import { executionName, type WorkflowTrigger } from '../core/triggers.js';

/** What {@link start} needs: the same for every forge's route. */
export interface StartDeps {
  starter: ExecutionStarter;
  /** Makes a delivery id start its executions once (sequential or concurrent redeliveries). */
  guard: DeliveryGuard;
  /** Time left to answer, in ms (the Lambda's remaining time). @default 8000 */
  remainingMs?: () => number;
}

/** A 5xx that tells the forge (or its admin) to redeliver; it names no internals. */
export const unavailable = (): HttpResponse => json(503, { message: 'could not start the workflow now; redeliver this delivery later' });

/**
 * Starts `workflows` for `change` once per delivery id (GitHub's `X-GitHub-Delivery`, GitLab's
 * `X-Gitlab-Event-UUID`); `skipOf` gives the reason a workflow's execution only records a SKIPPED
 * run (execution input `skip`). Executions are named from the delivery id ({@link executionName}).
 *
 * Answers: 202 `{ delivery, executions }`; 200 `{ duplicate: true, … }` for a delivery seen
 * before (or whose execution names all existed); 202 `duplicate` while another instance works on
 * it; 503 when a start failed (nothing kept by the guard, so a redelivery starts the rest) or
 * the time ran out before anything started. A delivery whose execution started is never answered
 * with an error.
 *
 * @example
 * return start(delivery, matched, change, deps, (w) => preconditions(subject, w));
 */
export async function start(
  delivery: string,
  workflows: readonly WorkflowTrigger[],
  change: Change,
  deps: StartDeps,
  skipOf: (w: WorkflowTrigger) => string | undefined = () => undefined,
): Promise<HttpResponse> {
  const remaining = deps.remainingMs ?? (() => 8000);
  // Kept outside `work`, so an answer after the deadline still knows what was started.
  const executions: Array<{ workflow: string; name: string; started: boolean; skip?: string }> = [];
  let answered = false;
  let starting: Promise<unknown> | undefined;
  let startError: unknown;
  const work = async () => {
    for (const w of workflows) {
      // Once the answer is out, start nothing more: what the answer said is what happened.
      if (answered) throw new Error('the answer was due before every workflow started');
      const name = executionName(delivery, w.id);
      const skip = skipOf(w);
      const input: ExecutionInput = { runId: name, workflow: w.id, change, ...(skip ? { skip } : {}) };
      const pending = deps.starter.start(w.id, name, input);
      starting = pending;
      let r: Awaited<typeof pending>;
      try {
        r = await pending;
      } catch (e) {
        startError = e;
        throw e;
      } finally {
        starting = undefined;
      }
      executions.push({ workflow: w.id, name: r.name, started: r.started, ...(skip ? { skip } : {}) });
    }
    return { executions };
  };
  try {
    const r = await withDeadline(deps.guard.once(delivery, work, remaining()), remaining() - 1000);
    if (r.inProgress) return json(202, { delivery, duplicate: true, message: 'this delivery is being processed already' });
    const executions = r.result.executions;
    // A name that already existed (the guard's record had expired) is a duplicate too.
    const duplicate = r.duplicate || executions.every((e) => !e.started);
    return json(duplicate ? 200 : 202, { delivery, ...(duplicate ? { duplicate: true } : {}), executions });
  } catch {
    answered = true;
    // A start still in flight at the deadline gets the last moments, so the answer says whether it started.
    if (starting) {
      await Promise.race([
        starting.catch(() => undefined),
        new Promise((r) => setTimeout(r, Math.max(0, Math.min(800, remaining() - 200)))),
      ]);
    }
    if (startError !== undefined) {
      // A workflow could not be started: the delivery failed, and a redelivery starts the rest
      // (the ones that started have their names and will not start twice).
      return json(503, {
        delivery,
        executions,
        message: 'a workflow could not be started; redeliver to start it (started ones will not start twice)',
      });
    }
    // An execution that started is never answered with an error: GitHub would show a failed
    // delivery for a review that is running (its idempotency record completes in the background).
    if (executions.some((e) => e.started)) {
      return json(202, { delivery, executions, message: 'started; the delivery record was still being written when the answer was due' });
    }
    return unavailable();
  }
}

/** A forge delivery that passed {@link admitDelivery}: its lower-cased headers, event name, delivery id and raw body. */
export interface AdmittedDelivery {
  readonly headers: Record<string, string | undefined>;
  readonly event: string;
  readonly delivery: string;
  readonly body: Buffer;
}

/** How one forge names and signs its deliveries, for {@link admitDelivery}. */
export interface DeliveryRules {
  /** Header of the event name (`x-github-event`, `x-gitlab-event`). */
  readonly eventHeader: string;
  /** Header of the delivery id (`x-github-delivery`, `x-gitlab-event-uuid`). */
  readonly idHeader: string;
  /** The two headers as the 400 names them. */
  readonly missing: string;
  /** The 415 message. */
  readonly contentType: string;
  /** Whether the raw body and headers are signed with one of `secrets` (constant time). */
  readonly verify: (secrets: readonly string[], body: Buffer, headers: Record<string, string | undefined>) => boolean;
}

/**
 * The checks every forge's webhook route makes first, in this order, each before any later work:
 * body over {@link MAX_BODY_BYTES} → 413; a missing event or delivery header → 400; Content-Type
 * not `application/json` → 415; the secrets not read in time → 503; the signature or token not
 * matching the current or previous secret → 401 (opaque). Nothing is read or written before the 401.
 * @returns the admitted delivery, or the answer to send
 */
export async function admitDelivery(
  req: HttpRequest,
  rules: DeliveryRules,
  deps: { secrets: () => Promise<readonly string[]>; remainingMs?: () => number },
): Promise<AdmittedDelivery | HttpResponse> {
  if (bodyBytes(req) > MAX_BODY_BYTES) return json(413, { message: `payload too large (limit ${MAX_BODY_BYTES} bytes)` });
  const headers = lowerHeaders(req.headers);
  const event = headers[rules.eventHeader];
  const delivery = headers[rules.idHeader];
  if (!event || !delivery) return json(400, { message: `missing ${rules.missing} header` });
  if (mediaType(headers['content-type']) !== 'application/json') return json(415, { message: rules.contentType });
  const body = rawBody(req);
  const remaining = deps.remainingMs ?? (() => 8000);
  let secrets: readonly string[];
  try {
    secrets = await withDeadline(deps.secrets(), remaining() - 1500);
  } catch {
    return unavailable();
  }
  if (!rules.verify(secrets, body, headers)) return UNAUTHORIZED();
  return { headers, event, delivery, body };
}

/** Whether {@link admitDelivery} gave an answer rather than a delivery. */
export const isAnswer = (r: AdmittedDelivery | HttpResponse): r is HttpResponse => 'statusCode' in r;
