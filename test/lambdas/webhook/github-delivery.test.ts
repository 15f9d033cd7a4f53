import { sign } from '@octokit/webhooks-methods';
import { describe, expect, it } from 'vitest';
import type { ExecutionStarter } from '../../../lambdas/core/ports.js';
import { handleGithubDelivery } from '../../../lambdas/webhook/github-delivery.js';

const SECRET = "It's a Secret to Everybody";

function recorder() {
  const started: Array<{ workflow: string; name: string; input: unknown }> = [];
  const starter: ExecutionStarter = {
    start: async (workflow, name, input) => {
      const dup = started.some((s) => s.name === name);
      if (!dup) started.push({ workflow, name, input });
      return { name, started: !dup };
    },
  };
  return { started, starter };
}

const prEvent = (action = 'opened') =>
  JSON.stringify({
    action,
    number: 7,
    pull_request: {
      title: 'T',
      html_url: 'https://github.com/acme/app/pull/7',
      user: { login: 'dev' },
      base: { sha: 'b'.repeat(40), ref: 'main' },
      head: { sha: 'c'.repeat(40), ref: 'feature' },
    },
    repository: { full_name: 'acme/app' },
  });

const workflows = [{ id: 'pr-review', events: ['pull_request.opened', 'pull_request.synchronize'] }];

async function deliver(body: string, headers: Record<string, string | undefined>, isBase64Encoded = false) {
  const rec = recorder();
  const res = await handleGithubDelivery(
    { headers, body, isBase64Encoded },
    { secret: async () => SECRET, workflows, starter: rec.starter },
  );
  return { res, started: rec.started };
}

const headers = async (body: string, extra: Record<string, string> = {}) => ({
  'X-GitHub-Event': 'pull_request',
  'X-GitHub-Delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958',
  'X-Hub-Signature-256': await sign(SECRET, body),
  ...extra,
});

describe('Function: handleGithubDelivery', () => {
  it("accepts GitHub's documented test vector", async () => {
    // Source: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    const { res } = await deliver('Hello, World!', {
      'x-github-event': 'ping',
      'x-github-delivery': 'd1',
      'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
    });
    expect(res.statusCode).toBe(200);
  });

  it('starts one execution named from the delivery for a matching pull_request action', async () => {
    const body = prEvent();
    const { res, started } = await deliver(body, await headers(body));
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toEqual({
      executions: [{ workflow: 'pr-review', name: '72d3162e-cc78-11e3-81ab-4c9367dc0958-pr-review', started: true }],
    });
    expect(started[0]?.input).toMatchObject({
      workflow: 'pr-review',
      change: { repository: 'acme/app', number: 7, headSha: 'c'.repeat(40) },
    });
  });

  it('verifies a base64-encoded body on its decoded bytes', async () => {
    const body = prEvent();
    const { res, started } = await deliver(Buffer.from(body).toString('base64'), await headers(body), true);
    expect(res.statusCode).toBe(202);
    expect(started).toHaveLength(1);
  });

  it('rejects a tampered body with 401 and starts nothing', async () => {
    const body = prEvent();
    const h = await headers(body);
    const { res, started } = await deliver(body.replace('"T"', '"X"'), h);
    expect(res.statusCode).toBe(401);
    expect(res.body).not.toContain('acme');
    expect(started).toEqual([]);
  });

  it('rejects a missing signature with 401 and a wrong secret with 401', async () => {
    const body = prEvent();
    const h = await headers(body);
    expect((await deliver(body, { ...h, 'X-Hub-Signature-256': undefined })).res.statusCode).toBe(401);
    expect((await deliver(body, { ...h, 'X-Hub-Signature-256': await sign('wrong', body) })).res.statusCode).toBe(401);
  });

  it('rejects a body re-serialised from parsed JSON', async () => {
    const body = prEvent().replace('{', '{ ');
    const h = await headers(body);
    const { res } = await deliver(JSON.stringify(JSON.parse(body)), h);
    expect(res.statusCode).toBe(401);
  });

  it('answers 400 when the event or delivery header is missing', async () => {
    const body = prEvent();
    const h = await headers(body);
    expect((await deliver(body, { ...h, 'X-GitHub-Delivery': undefined })).res.statusCode).toBe(400);
    expect((await deliver(body, { ...h, 'X-GitHub-Event': undefined })).res.statusCode).toBe(400);
  });

  it('answers 2xx and starts nothing for an action no workflow wants, and for other events', async () => {
    const body = prEvent('labeled');
    const a = await deliver(body, await headers(body));
    expect(a.res.statusCode).toBe(200);
    expect(a.started).toEqual([]);
    const issues = JSON.stringify({ action: 'opened' });
    const b = await deliver(issues, await headers(issues, { 'X-GitHub-Event': 'issues' }));
    expect(b.res.statusCode).toBe(200);
    expect(b.started).toEqual([]);
  });
});
