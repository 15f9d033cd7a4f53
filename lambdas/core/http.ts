/** An HTTP request as API Gateway's HTTP API (payload format 2.0) hands it to a Lambda. */
export interface HttpRequest {
  headers: Record<string, string | undefined>;
  body?: string | undefined;
  isBase64Encoded?: boolean | undefined;
}

/** The HTTP answer, in API Gateway's Lambda proxy format. */
export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Largest request body the ingress routes accept, in bytes (5 MiB). API Gateway HTTP APIs take
 * up to 10 MB and a synchronous Lambda invocation up to 6 MB of event; GitHub sends up to 25 MB
 * and drops larger deliveries. A larger body is refused with 413 before anything else is done.
 * Sources: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html,
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap (2026-11)
 */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;

/** A JSON answer. */
export const json = (statusCode: number, body: unknown): HttpResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** The same opaque answer for every authentication failure: it says nothing about which check failed. */
export const UNAUTHORIZED = (): HttpResponse => json(401, { message: 'unauthorized' });

/** Headers with lower-case names (HTTP header names are case-insensitive; API Gateway v2 lower-cases them already). */
export function lowerHeaders(headers: Record<string, string | undefined>): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

/** The request body's bytes exactly as sent (API Gateway base64-encodes bodies it treats as binary). */
export function rawBody(req: HttpRequest): Buffer {
  return Buffer.from(req.body ?? '', req.isBase64Encoded ? 'base64' : 'utf8');
}

/** The media type of a Content-Type header, lower-cased, without parameters (`application/json`). */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** The body length in bytes, without decoding it (base64 is 4 characters per 3 bytes). */
export function bodyBytes(req: HttpRequest): number {
  const n = req.body?.length ?? 0;
  return req.isBase64Encoded ? Math.floor((n * 3) / 4) : Buffer.byteLength(req.body ?? '');
}

/** A dependency did not answer in the time the route has left. */
export class DeadlineError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

/**
 * `p`, or a rejection with {@link DeadlineError} after `ms` (at least 1 ms), whichever comes first;
 * the timer is cleared either way. The work itself is not cancelled.
 */
export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(ms)), Math.max(1, ms));
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
