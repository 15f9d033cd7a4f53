/**
 * The local table's requests without sockets: an AWS SDK request handler (the SDK's `requestHandler`
 * extension point) that gives each request to dynalite's own HTTP request listener in this process,
 * as its HTTP server would, and returns dynalite's response to the SDK unchanged (status, headers —
 * `x-amz-crc32` included, which the DynamoDB client checks — and body).
 *
 * Why: the local runtime runs every Lambda of an execution on one thread, so each DynamoDB request
 * costs the client's and dynalite's CPU there one after another. Over loopback HTTP a request costs
 * about 1.4 ms of CPU; in process about 0.8 ms, and 0.65 ms unsigned (measured on this machine,
 * 1,000 UpdateItems, Node 24; issue 16). The SDK client, its serializers, checksums and retries are
 * the real ones; only the socket and the HTTP parsing on both sides are left out.
 *
 * dynalite does not check signatures (only the Authorization header's form), so the in-process
 * client signs with {@link LOCAL_SIGNATURE}, a fixed header of that form, instead of computing
 * SigV4. The table still listens on 127.0.0.1 for clients in other processes.
 */
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { DynamoDBClient, DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';

/** The parts of a Smithy `HttpRequest` this handler reads. */
interface SdkRequest {
  method: string;
  path: string;
  query?: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
}

/** dynalite's request listener: `(req, res)`, as its `http.Server` calls it. */
type Listener = (req: unknown, res: unknown) => void;

/** The request body's bytes: the SDK gives a string or a Uint8Array (its JSON codec's byte-string adapter). */
function bytesOf(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError(`in-process DynamoDB handler: unsupported request body (${typeof body})`);
}

/** A request handler serving a table in this process, and how to stop it. */
export interface InProcessHandler {
  /** The `requestHandler` of a `DynamoDBClient`. */
  readonly requestHandler: NonNullable<DynamoDBClientConfig['requestHandler']>;
  /**
   * Refuses new requests (they fail with an error, as a closed socket would) and waits for those in
   * flight, so dynalite can be closed under none: a request reaching a closed dynalite throws
   * outside any caller.
   */
  close(): Promise<void>;
}

/**
 * A request handler for a `DynamoDBClient` that serves its requests with `server`'s dynalite listener
 * in this process.
 * @param server the `http.Server` `dynalite()` returned (listening or not)
 * @throws Error when `server` has no request listener
 * @example
 * const db = dynalite({ createTableMs: 0 });
 * const local = inProcessHandler(db);
 * const client = new DynamoDBClient({ endpoint, region: 'us-east-1', requestHandler: local.requestHandler, ...UNSIGNED });
 * // …
 * await local.close();
 * db.close();
 */
export function inProcessHandler(server: Server): InProcessHandler {
  const listener = server.listeners('request')[0] as Listener | undefined;
  if (!listener) throw new Error('in-process DynamoDB handler: the dynalite server has no request listener');
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  const handler = {
    metadata: { handlerProtocol: 'http/1.1' },
    destroy: () => undefined,
    updateHttpClientConfig: () => undefined,
    httpHandlerConfigs: () => ({}),
    handle: (
      request: SdkRequest,
    ): Promise<{ response: { statusCode: number; reason?: string; headers: Record<string, string>; body: Uint8Array } }> => {
      if (closed) return Promise.reject(Object.assign(new Error('the local table is closed'), { code: 'ECONNREFUSED' }));
      const body = bytesOf(request.body);
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(request.query ?? {})) {
        for (const one of Array.isArray(v) ? v : [v]) query.append(k, one ?? '');
      }
      const search = query.toString();
      const req = Object.assign(new EventEmitter(), {
        method: request.method,
        url: `${request.path || '/'}${search ? `?${search}` : ''}`,
        headers: Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v])),
      });
      const answer = new Promise<{ response: { statusCode: number; headers: Record<string, string>; body: Uint8Array } }>(
        (resolve, reject) => {
          const headers: Record<string, string> = {};
          const res = {
            statusCode: 200,
            contentType: '',
            setHeader(name: string, value: unknown) {
              headers[name.toLowerCase()] = String(value);
            },
            end(out?: string | Buffer) {
              resolve({
                response: {
                  statusCode: res.statusCode,
                  headers,
                  body: typeof out === 'string' ? Buffer.from(out, 'utf8') : (out ?? Buffer.alloc(0)),
                },
              });
            },
          };
          try {
            listener(req, res);
          } catch (e) {
            reject(e);
            return;
          }
          // The body arrives after the listener subscribed, as from a socket. dynalite's synchronous
          // work (parsing, validation) runs here: its errors fail this request.
          process.nextTick(() => {
            try {
              if (body.length > 0) req.emit('data', body);
              req.emit('end');
            } catch (e) {
              reject(e);
            }
          });
        },
      );
      inFlight.add(answer);
      const done = () => inFlight.delete(answer);
      answer.then(done, done);
      return answer;
    },
  };
  return {
    requestHandler: handler as unknown as NonNullable<DynamoDBClientConfig['requestHandler']>,
    close: async () => {
      closed = true;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}

/** The Authorization header the in-process client sends: SigV4's form (dynalite checks it), no real signature. */
const LOCAL_SIGNATURE =
  'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=0';

/** The `x-amz-date` sent with {@link LOCAL_SIGNATURE} (its credential scope's day). */
const LOCAL_SIGNATURE_DATE = '20260101T000000Z';

/**
 * Client settings that send {@link LOCAL_SIGNATURE} instead of a SigV4 signature (dynalite in this
 * process checks the header's form only). For the in-process table only: a real endpoint refuses it.
 */
export const UNSIGNED: Pick<DynamoDBClientConfig, 'httpAuthSchemes'> = {
  httpAuthSchemes: [
    {
      schemeId: 'aws.auth#sigv4',
      identityProvider: () => async () => ({ accessKeyId: 'local', secretAccessKey: 'local' }),
      signer: {
        sign: async (request: { headers: Record<string, string> }) => {
          request.headers.authorization = LOCAL_SIGNATURE;
          request.headers['x-amz-date'] = LOCAL_SIGNATURE_DATE;
          return request;
        },
      },
    },
  ] as unknown as DynamoDBClientConfig['httpAuthSchemes'],
};

/**
 * Steps of the SDK's middleware stack that do nothing for the in-process table and are left out:
 * request logging (no logger is set; its log filter still walks every request and response) and
 * the Lambda trace header. The User-Agent step stays: Powertools adds its own after it. Serialisation,
 * checksums, retries and errors are kept.
 */
const UNUSED_LOCALLY = ['loggerMiddleware', 'recursionDetectionMiddleware'] as const;

/** `client` without the {@link UNUSED_LOCALLY} steps. @returns `client` */
export function withoutUnusedSteps(client: DynamoDBClient): DynamoDBClient {
  for (const name of UNUSED_LOCALLY) client.middlewareStack.remove(name);
  return client;
}
