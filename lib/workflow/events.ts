import { createRequire } from 'node:module';

/**
 * Events a workflow can be triggered by that do not come from a forge: `manual` is a run started
 * from Slack (`/agentflow run`) or the CLI.
 */
export const NEUTRAL_EVENTS = ['manual'] as const;

/**
 * GitHub events whose deliveries start workflows. The webhook route acts on `pull_request` only
 * (`issue_comment` carries `/agentflow` commands, not triggers), so any other GitHub event in a
 * trigger would never start a run.
 */
export const TRIGGER_EVENTS = ['pull_request'] as const;

interface JsonSchemaNode {
  readonly $ref?: string;
  readonly oneOf?: readonly JsonSchemaNode[];
  readonly properties?: { readonly action?: { readonly enum?: readonly string[]; readonly const?: string } };
}

let cache: ReadonlyMap<string, readonly string[]> | undefined;

/**
 * Every GitHub webhook event and its actions (sorted), from GitHub's webhook definitions in
 * `@octokit/webhooks-schemas` (a 630 KB JSON Schema, parsed on the first call only: about 10–20 ms).
 *
 * The schema's top-level `oneOf` names one definition per event (`pull_request_event`,
 * `push$event`); an event with actions is a `oneOf` of `<event>$<action>` definitions whose
 * `properties.action` is an `enum` (or a `const`), some nested in a further `oneOf`. An event
 * without actions (`push`) maps to an empty list.
 *
 * @example
 * githubWebhookEvents().get('pull_request'); // ['assigned', 'auto_merge_disabled', …, 'unlocked']
 */
export function githubWebhookEvents(): ReadonlyMap<string, readonly string[]> {
  cache ??= readWebhookEvents();
  return cache;
}

function readWebhookEvents(): ReadonlyMap<string, readonly string[]> {
  const schema = createRequire(import.meta.url)('@octokit/webhooks-schemas') as {
    definitions: Record<string, JsonSchemaNode>;
    oneOf: readonly JsonSchemaNode[];
  };
  const resolve = (node: JsonSchemaNode): JsonSchemaNode => {
    const name = node.$ref?.replace('#/definitions/', '');
    return (name ? schema.definitions[name] : undefined) ?? node;
  };
  const actions = (node: JsonSchemaNode, into: Set<string>): Set<string> => {
    const def = resolve(node);
    const action = def.properties?.action;
    for (const a of action?.enum ?? (action?.const ? [action.const] : [])) into.add(a);
    for (const variant of def.oneOf ?? []) actions(variant, into);
    return into;
  };
  const events = new Map<string, readonly string[]>();
  for (const ref of schema.oneOf) {
    const name = ref.$ref?.replace('#/definitions/', '').replace(/(_|\$)event$/, '');
    if (name) events.set(name, [...actions(ref, new Set())].sort());
  }
  return events;
}

/**
 * Why `event` (`pull_request`, `pull_request.<action>` or `manual`) can never start a workflow,
 * or `undefined` when it can. Unknown events and actions are checked against GitHub's webhook
 * definitions ({@link githubWebhookEvents}).
 *
 * @example
 * triggerEventError('pull_request.opend');
 * // 'unknown action "opend" of pull_request (known: assigned, auto_merge_disabled, …)'
 */
export function triggerEventError(event: string): string | undefined {
  if ((NEUTRAL_EVENTS as readonly string[]).includes(event)) return undefined;
  const [name = '', action, ...rest] = event.split('.');
  const supported = [...TRIGGER_EVENTS, ...NEUTRAL_EVENTS].join(', ');
  if (rest.length > 0) return `"${event}" is not an event name: write <event> or <event>.<action>, e.g. pull_request.opened`;
  const known = githubWebhookEvents();
  const actions = known.get(name);
  if (!actions) return `unknown event "${name}" (known: ${supported})`;
  if (!(TRIGGER_EVENTS as readonly string[]).includes(name)) {
    return `GitHub's "${name}" event never starts a workflow (AgentFlow is triggered by ${supported})`;
  }
  if (action !== undefined && !actions.includes(action)) {
    return `unknown action "${action}" of ${name} (known: ${actions.join(', ')})`;
  }
  return undefined;
}
