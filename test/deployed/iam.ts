import type { DeployedStack } from './assembly.js';

/** An AWS API call a function made, as a stand-in saw it: who (by access key), what, on which ARN. */
export interface AwsCall {
  /** The access key id of the SigV4 `Authorization` header (the harness gives each function its own). */
  readonly accessKeyId: string;
  /** `service:Action`, e.g. `dynamodb:PutItem`. */
  readonly action: string;
  readonly resource: string;
}

/** Records the AWS calls the stand-ins receive. */
export class AwsCallLog {
  readonly calls: AwsCall[] = [];

  /** Records a call signed with the `Authorization` header `authorization`. */
  record(authorization: string | string[] | undefined, action: string, resource: string): void {
    const key = /Credential=([A-Z0-9]+)\//.exec(String(authorization ?? ''))?.[1] ?? 'unsigned';
    this.calls.push({ accessKeyId: key, action, resource });
  }
}

interface Statement {
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: unknown;
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** An IAM wildcard (`*`, `?`) as a regular expression; `ignoreCase` for actions. */
function wildcard(pattern: string, ignoreCase = false): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, ignoreCase ? 'i' : '');
}

/**
 * The identity-based policy statements of a function's execution role in the template: the
 * role's inline `Policies` and every `AWS::IAM::Policy` attached to it, intrinsics resolved to
 * the harness's local values (one it cannot resolve becomes a value that matches nothing).
 * Managed policies are not read.
 */
export function roleStatements(stack: DeployedStack, functionId: string): Statement[] {
  const res = stack.template.Resources;
  const role = (res[functionId]?.Properties?.Role as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt']?.[0];
  if (!role) return [];
  const docs: unknown[] = [];
  for (const p of (res[role]?.Properties?.Policies as Array<{ PolicyDocument: unknown }> | undefined) ?? []) docs.push(p.PolicyDocument);
  for (const r of Object.values(res)) {
    if (r.Type !== 'AWS::IAM::Policy') continue;
    const roles = (r.Properties?.Roles as Array<{ Ref?: string }> | undefined) ?? [];
    if (roles.some((x) => x.Ref === role)) docs.push(r.Properties?.PolicyDocument);
  }
  return docs.flatMap((d) => {
    const resolved = stack.resolveDeep(d, { lenient: true }) as { Statement?: Statement | Statement[] };
    return Array.isArray(resolved.Statement) ? resolved.Statement : resolved.Statement ? [resolved.Statement] : [];
  });
}

/**
 * Whether `statements` allow `action` on `resource`: an Allow matches (Action/NotAction,
 * Resource/NotResource with IAM wildcards) and no Deny does. Conditions are not evaluated (a
 * statement with a Condition counts as matching).
 */
export function isAllowed(statements: readonly Statement[], action: string, resource: string): boolean {
  const matches = (s: Statement) => {
    const actionOk = s.Action
      ? list(s.Action).some((a) => wildcard(a, true).test(action))
      : !list(s.NotAction).some((a) => wildcard(a, true).test(action));
    const resourceOk = s.Resource
      ? list(s.Resource).some((r) => wildcard(r).test(resource))
      : !list(s.NotResource).some((r) => wildcard(r).test(resource));
    return actionOk && resourceOk;
  };
  if (statements.some((s) => s.Effect === 'Deny' && matches(s))) return false;
  return statements.some((s) => s.Effect === 'Allow' && matches(s));
}
