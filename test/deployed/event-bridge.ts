import { randomUUID } from 'node:crypto';
import { type DeployedStack, LOCAL_ACCOUNT } from './assembly.js';
import type { LambdaHost } from './lambda-host.js';
import type { Execution } from './step-functions.js';

/** An event on the default bus, as EventBridge delivers it to a target. */
export interface BusEvent {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

/** A delivery of an event to a rule's Lambda target: its outcome once settled. */
export interface Delivery {
  readonly rule: string;
  readonly functionId: string;
  readonly event: BusEvent;
  readonly result: Promise<{ ok: boolean; value?: unknown; error?: string }>;
}

/**
 * Whether `event` matches an EventBridge event pattern: every field the pattern names must match;
 * an array lists the allowed values (or `{ prefix }`, `{ exists }`, `{ 'anything-but' }`
 * matchers); an object matches the nested fields.
 * Source: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html (2025-11)
 */
export function matchesPattern(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, want]) => {
    const have = event[key];
    if (Array.isArray(want)) {
      const values = Array.isArray(have) ? have : [have];
      return want.some((w) => {
        if (w && typeof w === 'object') {
          const m = w as { prefix?: string; exists?: boolean; 'anything-but'?: unknown };
          if (m.prefix !== undefined) return values.some((v) => typeof v === 'string' && v.startsWith(m.prefix as string));
          if (m.exists !== undefined) return (have !== undefined) === m.exists;
          if (m['anything-but'] !== undefined) {
            const not = Array.isArray(m['anything-but']) ? m['anything-but'] : [m['anything-but']];
            return values.every((v) => !not.includes(v));
          }
          throw new Error(`the harness does not match the pattern ${JSON.stringify(w)}`);
        }
        return values.includes(w);
      });
    }
    if (want && typeof want === 'object') {
      return !!have && typeof have === 'object' && matchesPattern(want as Record<string, unknown>, have as Record<string, unknown>);
    }
    throw new Error(`invalid event pattern at ${key}: ${JSON.stringify(want)}`);
  });
}

/**
 * The template's EventBridge rules (`AWS::Events::Rule` with an `EventPattern`) on the default
 * bus: an event put here goes to the Lambda targets of every rule it matches, asynchronously, as
 * EventBridge delivers it (the whole event as the function's payload). Step Functions'
 * "Execution Status Change" events come from {@link LocalEventBus.executionStatusChanged}.
 */
export class LocalEventBus {
  readonly deliveries: Delivery[] = [];
  readonly events: BusEvent[] = [];
  private readonly rules: Array<{ id: string; pattern: Record<string, unknown>; targets: string[] }> = [];

  constructor(
    private readonly stack: DeployedStack,
    private readonly host: LambdaHost,
    private readonly region: string,
  ) {
    for (const [id, r] of Object.entries(stack.template.Resources)) {
      if (r.Type !== 'AWS::Events::Rule') continue;
      const p = (stack.resolveDeep(r.Properties ?? {}) ?? {}) as {
        State?: string;
        EventPattern?: Record<string, unknown>;
        EventBusName?: string;
        Targets?: Array<{ Arn: string; Input?: string; InputPath?: string; InputTransformer?: unknown }>;
      };
      if (!p.EventPattern || (p.State && p.State !== 'ENABLED') || (p.EventBusName && p.EventBusName !== 'default')) continue;
      const targets = (p.Targets ?? []).map((t) => {
        if (t.Input !== undefined || t.InputPath !== undefined || t.InputTransformer !== undefined) {
          throw new Error(`rule ${id}: the harness delivers whole events only (a target rewrites its input)`);
        }
        const fn = stack.functionByArn(t.Arn);
        if (!fn) throw new Error(`rule ${id}: target ${t.Arn} is not a function of the stack`);
        return fn.logicalId;
      });
      this.rules.push({ id, pattern: p.EventPattern, targets });
    }
  }

  /** The rules read from the template (logical ids). */
  get ruleIds(): string[] {
    return this.rules.map((r) => r.id);
  }

  /** Puts an event on the bus (PutEvents); matching rules deliver it to their targets. */
  put(event: Omit<BusEvent, 'version' | 'id' | 'account' | 'time' | 'region'>): BusEvent {
    const full: BusEvent = {
      version: '0',
      id: randomUUID(),
      account: LOCAL_ACCOUNT,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: this.region,
      ...event,
    };
    this.events.push(full);
    for (const rule of this.rules) {
      if (!matchesPattern(rule.pattern, full as unknown as Record<string, unknown>)) continue;
      for (const functionId of rule.targets) {
        const fn = this.stack.functions.get(functionId);
        if (!fn) continue;
        const result = this.host.invoke(fn, full).then(
          (value) => ({ ok: true, value }),
          (e: Error) => ({ ok: false, error: `${e.name}: ${e.message}` }),
        );
        this.deliveries.push({ rule: rule.id, functionId, event: full, result });
      }
    }
    return full;
  }

  /**
   * The "Step Functions Execution Status Change" event of an execution, as Step Functions sends it
   * (dates in ms since the epoch, input and output as JSON text).
   * Source: https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html (2025-11)
   */
  executionStatusChanged(e: Execution): BusEvent {
    return this.put({
      'detail-type': 'Step Functions Execution Status Change',
      source: 'aws.states',
      resources: [e.arn],
      detail: {
        executionArn: e.arn,
        stateMachineArn: e.stateMachine.arn,
        name: e.name,
        status: e.status,
        startDate: e.startDate.getTime(),
        stopDate: e.stopDate?.getTime() ?? null,
        input: JSON.stringify(e.input),
        output: e.status === 'SUCCEEDED' ? JSON.stringify(e.output) : null,
        inputDetails: { included: true },
        outputDetails: e.status === 'SUCCEEDED' ? { included: true } : null,
        error: e.error ?? null,
        cause: e.cause ?? null,
      },
    });
  }

  /** Waits for every delivery so far. */
  async settled(): Promise<void> {
    await Promise.all(this.deliveries.map((d) => d.result));
  }
}
