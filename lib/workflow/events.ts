import { createRequire } from 'node:module';

/**
 * Events a workflow can be triggered by that do not come from a forge: `manual` is a review started
 * from Slack (`/agentflow run`) or the CLI; `request` is a person's request (`/agentflow ask`,
 * `agentflow run <workflow> --request`), which makes the workflow a request workflow (issue 15).
 */
export const NEUTRAL_EVENTS = ['manual', 'request'] as const;

/** The event of request workflows: a workflow it starts answers a person's request instead of reviewing a change. */
export const REQUEST_EVENT = 'request';

/**
 * GitLab's merge request actions (`object_attributes.action`). The webhook's copy is
 * `MERGE_REQUEST_ACTIONS` in `lambdas/core/gitlab-events.ts` (the compiler imports nothing from
 * the Lambdas); a test keeps the two equal.
 * Source: https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events (read 2026-11)
 */
export const GITLAB_MERGE_REQUEST_ACTIONS = [
  'open',
  'close',
  'reopen',
  'update',
  'approved',
  'unapproved',
  'approval',
  'unapproval',
  'merge',
] as const;

/**
 * The actions of the forge-neutral `change` event: `opened` (a pull or merge request opened or
 * reopened) and `updated` (new commits). The webhook's table is `CHANGE_EVENTS` in
 * `lambdas/core/triggers.ts`; a test keeps the two equal.
 */
export const CHANGE_ACTIONS = ['opened', 'updated', 'ready'] as const;

/**
 * Forge events whose deliveries start workflows: GitHub's `pull_request`, GitLab's
 * `merge_request`, and the forge-neutral `change` (`change.opened`, `change.updated`: see
 * {@link CHANGE_ACTIONS}). The webhook routes act on these only
 * (`issue_comment` and GitLab's notes carry `/agentflow` commands, not triggers), so any other
 * event in a trigger would never start a run.
 */
export const TRIGGER_EVENTS = ['pull_request', 'merge_request', 'change'] as const;
type TriggerEvent = (typeof TRIGGER_EVENTS)[number];

/**
 * The actions of each trigger event, and whether the bare name may be written (`pull_request`
 * stands for the default actions; `merge_request` and `change` need an action).
 */
const TRIGGER_ACTIONS: Record<TriggerEvent, { actions: () => readonly string[]; bare: boolean }> = {
  pull_request: { actions: () => githubWebhookEvents().get('pull_request') ?? [], bare: true },
  merge_request: { actions: () => GITLAB_MERGE_REQUEST_ACTIONS, bare: false },
  change: { actions: () => CHANGE_ACTIONS, bare: false },
};

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
 * Why `event` can never start a workflow, or `undefined` when it can. Events: `pull_request` or
 * `pull_request.<action>` (actions from GitHub's webhook definitions, {@link githubWebhookEvents}),
 * `merge_request.<action>` (GitLab's, {@link GITLAB_MERGE_REQUEST_ACTIONS}), `change.opened` /
 * `change.updated` (either forge) and `manual`. The message lists the known events or actions;
 * the caller adds the line and column.
 *
 * @example
 * triggerEventError('pull_request.opend');
 * // 'unknown action "opend" of pull_request (known: assigned, auto_merge_disabled, …)'
 * triggerEventError('change.closed'); // 'unknown action "closed" of change (known: opened, updated)'
 */
export function triggerEventError(event: string): string | undefined {
  if ((NEUTRAL_EVENTS as readonly string[]).includes(event)) return undefined;
  const [name = '', action, ...rest] = event.split('.');
  const supported = ['pull_request', 'merge_request.<action>', ...CHANGE_ACTIONS.map((a) => `change.${a}`), ...NEUTRAL_EVENTS].join(', ');
  if (rest.length > 0) return `"${event}" is not an event name: write <event> or <event>.<action>, e.g. pull_request.opened`;
  if (!(TRIGGER_EVENTS as readonly string[]).includes(name)) {
    if (githubWebhookEvents().has(name)) return `GitHub's "${name}" event never starts a workflow (AgentFlow is triggered by ${supported})`;
    return `unknown event "${name}" (known: ${supported})`;
  }
  const { actions, bare } = TRIGGER_ACTIONS[name as TriggerEvent];
  const known = actions();
  if (action === undefined) {
    return bare ? undefined : `"${name}" needs an action: write ${name}.<action> (known: ${known.join(', ')})`;
  }
  if (!known.includes(action)) return `unknown action "${action}" of ${name} (known: ${known.join(', ')})`;
  return undefined;
}
