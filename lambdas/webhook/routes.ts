import { type HttpRequest, type HttpResponse, json } from '../core/http.js';
import { type CiCallbackDeps, handleCiCallback } from './ci-callback.js';
import { type GithubDeliveryDeps, handleGithubDelivery } from './github-delivery.js';
import { type GitlabDeliveryDeps, handleGitlabDelivery } from './gitlab-delivery.js';
import { handleSlackCommand, handleSlackInteraction, type SlackDeps } from './slack.js';

/** The ingress routes of the HTTP API (all `POST`). */
export const INGRESS_ROUTES = [
  '/webhooks/github',
  '/webhooks/gitlab',
  '/webhooks/slack/commands',
  '/webhooks/slack/interactions',
  '/webhooks/ci',
] as const;

/** What the routes need; a route whose deps are missing answers 503 saying what to configure. */
export interface IngressDeps {
  github: GithubDeliveryDeps;
  /** @default - `POST /webhooks/gitlab` answers 503 until a GitLab webhook secret is configured */
  gitlab?: GitlabDeliveryDeps;
  slack?: SlackDeps;
  ci?: CiCallbackDeps;
}

const notConfigured = (what: string) => json(503, { message: `${what} is not configured` });

/** Dispatches one request by its path to the route's use case. */
export async function routeIngress(path: string, req: HttpRequest, deps: IngressDeps): Promise<HttpResponse> {
  switch (path) {
    case '/webhooks/github':
      return handleGithubDelivery(req, deps.github);
    case '/webhooks/gitlab':
      return deps.gitlab ? handleGitlabDelivery(req, deps.gitlab) : notConfigured('GitLab (webhook secret)');
    case '/webhooks/slack/commands':
      return deps.slack ? handleSlackCommand(req, deps.slack) : notConfigured('Slack (signing secret)');
    case '/webhooks/slack/interactions':
      return deps.slack ? handleSlackInteraction(req, deps.slack) : notConfigured('Slack (signing secret)');
    case '/webhooks/ci':
      return deps.ci ? handleCiCallback(req, deps.ci) : notConfigured('the CI callback (CI secret)');
    default:
      return json(404, { message: `no route POST ${path}` });
  }
}
