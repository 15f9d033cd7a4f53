import type { Forge } from '../core/contracts.js';
import { type HttpRequest, type HttpResponse, json } from '../core/http.js';
import { type CiCallbackDeps, handleCiCallback } from './ci-callback.js';
import { type GithubDeliveryDeps, handleGithubDelivery } from './github-delivery.js';
import { type GitlabDeliveryDeps, handleGitlabDelivery } from './gitlab-delivery.js';
import { handleSlackCommand, handleSlackInteraction, type SlackDeps } from './slack.js';

/** What the routes need; a route whose deps are missing answers 503 saying what to configure. */
export interface IngressDeps {
  github: GithubDeliveryDeps;
  /** @default - `POST /webhooks/gitlab` answers 503 until a GitLab webhook secret is configured */
  gitlab?: GitlabDeliveryDeps;
  slack?: SlackDeps;
  ci?: CiCallbackDeps;
}

const notConfigured = (what: string) => json(503, { message: `${what} is not configured` });

/**
 * Each forge's webhook route (its deliveries, and the `/agentflow` commands in its comments): a
 * forge added to `FORGES` does not compile until it has one.
 */
const FORGE_WEBHOOKS: Record<
  Forge,
  { path: `/webhooks/${string}`; handle: (req: HttpRequest, deps: IngressDeps) => Promise<HttpResponse> }
> = {
  github: { path: '/webhooks/github', handle: (req, deps) => handleGithubDelivery(req, deps.github) },
  gitlab: {
    path: '/webhooks/gitlab',
    handle: async (req, deps) => (deps.gitlab ? handleGitlabDelivery(req, deps.gitlab) : notConfigured('GitLab (webhook secret)')),
  },
};

/** The other routes: Slack's slash command and interactivity, and the signed CI callback. */
const OTHER_ROUTES = {
  '/webhooks/slack/commands': (req: HttpRequest, deps: IngressDeps) =>
    deps.slack ? handleSlackCommand(req, deps.slack) : Promise.resolve(notConfigured('Slack (signing secret)')),
  '/webhooks/slack/interactions': (req: HttpRequest, deps: IngressDeps) =>
    deps.slack ? handleSlackInteraction(req, deps.slack) : Promise.resolve(notConfigured('Slack (signing secret)')),
  '/webhooks/ci': (req: HttpRequest, deps: IngressDeps) =>
    deps.ci ? handleCiCallback(req, deps.ci) : Promise.resolve(notConfigured('the CI callback (CI secret)')),
} as const;

/** The ingress routes of the HTTP API (all `POST`): every forge's webhook, then Slack's and CI's. */
export const INGRESS_ROUTES: readonly string[] = [...Object.values(FORGE_WEBHOOKS).map((w) => w.path), ...Object.keys(OTHER_ROUTES)];

/** Dispatches one request by its path to the route's use case. */
export async function routeIngress(path: string, req: HttpRequest, deps: IngressDeps): Promise<HttpResponse> {
  const forge = Object.values(FORGE_WEBHOOKS).find((w) => w.path === path);
  if (forge) return forge.handle(req, deps);
  if (!Object.hasOwn(OTHER_ROUTES, path)) return json(404, { message: `no route POST ${path}` });
  return OTHER_ROUTES[path as keyof typeof OTHER_ROUTES](req, deps);
}
