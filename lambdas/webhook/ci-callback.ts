import { z } from 'zod';
import { type DecideDeps, decideApproval } from '../core/approvals.js';
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
} from '../core/http.js';
import { verifyGithubSignature } from '../core/signatures.js';

/** Header carrying `sha256=<HMAC-SHA256 of the raw body>` keyed by the CI secret (GitHub's scheme). */
export const CI_SIGNATURE_HEADER = 'x-agentflow-signature-256';

/** What CI reports about the generated tests of a commit. */
export const CiReportSchema = z.strictObject({
  /** `owner/name` and the head commit the tests ran on; or the `callback` id a run printed. */
  repository: z.string().optional(),
  sha: z.string().optional(),
  callback: z.string().optional(),
  conclusion: z.enum(['success', 'failure', 'cancelled', 'timed_out']),
  summary: z.string().max(2000).optional(),
  /** Line coverage after the run, in percent. */
  coverage: z.number().min(0).max(100).optional(),
  url: z.string().url().optional(),
});
export type CiReport = z.infer<typeof CiReportSchema>;

export interface CiCallbackDeps {
  /** The CI secret(s): current and, during a rotation, previous. */
  secrets: () => Promise<readonly string[]>;
  approvals: DecideDeps;
}

/**
 * `POST /webhooks/ci`: the team's CI reports the result of the generated tests, completing the
 * test-generation workflow's `ci` gate. Signed like GitHub webhooks (`X-AgentFlow-Signature-256:
 * sha256=<hex>` over the raw body, CI secret), checked before the body is parsed (401 opaque).
 * The waiting gate is found by `callback` id or by `repository` + `sha`. `success` completes the
 * task with SendTaskSuccess; any other conclusion with SendTaskFailure; both carry the report.
 * Answers 200 with the decision, 404 when no gate waits for that commit.
 */
export async function handleCiCallback(req: HttpRequest, deps: CiCallbackDeps): Promise<HttpResponse> {
  if (bodyBytes(req) > MAX_BODY_BYTES) return json(413, { message: 'payload too large' });
  const h = lowerHeaders(req.headers);
  if (mediaType(h['content-type']) !== 'application/json') return json(415, { message: 'send application/json' });
  const body = rawBody(req);
  if (!verifyGithubSignature(await deps.secrets(), body, h[CI_SIGNATURE_HEADER])) return UNAUTHORIZED();
  let report: CiReport;
  try {
    report = CiReportSchema.parse(JSON.parse(body.toString('utf8')));
  } catch {
    return json(400, {
      message: 'expected { repository, sha | callback, conclusion: success|failure|cancelled|timed_out, summary?, coverage?, url? }',
    });
  }
  const id =
    report.callback ??
    (report.repository && report.sha ? (await deps.approvals.approvals.findPendingCi(report.repository, report.sha))?.id : undefined);
  if (!id) return json(404, { message: 'no workflow waits for a CI report on that commit' });
  const { callback: _c, ...output } = report;
  const decision = await decideApproval(id, report.conclusion === 'success' ? 'approve' : 'reject', { ci: true }, deps.approvals, output);
  return json(decision.outcome === 'approved' || decision.outcome === 'rejected' ? 200 : 409, decision);
}
