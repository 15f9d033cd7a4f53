import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { addEnvironmentStack } from '../../lib/stack.js';
import type { AslDefinition } from '../../lib/workflow/index.js';
import { loadWorkspace, PROJECT_ROOT } from '../../lib/workspace.js';

/** The account and region the synthesized ARNs are resolved with (nothing is deployed). */
export const LOCAL_ACCOUNT = '123456789012';

/** A Lambda function of the synthesized stack, as the Lambda service would run it. */
export interface DeployedFunction {
  /** The CloudFormation logical id, e.g. `PublishFunction725B381F`. */
  readonly logicalId: string;
  /** The ARN this harness gives the function (what `Fn::GetAtt [id, Arn]` resolves to). */
  readonly arn: string;
  /** The asset folder the function's code was bundled into (`asset.<hash>` in the cloud assembly). */
  readonly codeDir: string;
  /** The bundled module file (`index.mjs` for `Handler: index.handler`). */
  readonly moduleFile: string;
  /** The exported handler name (`handler`). */
  readonly exportName: string;
  /** `Environment.Variables` of the template, every intrinsic resolved to a local value. */
  readonly environment: Readonly<Record<string, string>>;
  /** `Timeout` of the template, in seconds. */
  readonly timeoutSeconds: number;
  readonly memorySize: number;
}

/** A state machine of the synthesized stack: its definition with the substitutions applied. */
export interface DeployedStateMachine {
  readonly logicalId: string;
  readonly name: string;
  readonly arn: string;
  readonly definition: AslDefinition;
}

/** What the harness runs: the stack's functions and state machines, resolved against local resources. */
export interface DeployedStack {
  readonly outdir: string;
  readonly template: CfnTemplate;
  readonly functions: ReadonlyMap<string, DeployedFunction>;
  readonly stateMachines: ReadonlyMap<string, DeployedStateMachine>;
  /** The function an ARN names (the `FunctionName` a Task state passes). */
  functionByArn(arn: string): DeployedFunction | undefined;
  /**
   * A template value with every intrinsic function in it resolved to its local value; `lenient`
   * turns one the harness cannot resolve into `unresolved:<what>` (which matches no ARN) instead of throwing.
   */
  resolveDeep(v: unknown, options?: { lenient?: boolean }): unknown;
}

/** Local names the template's resources resolve to (`Ref` of a table, bucket, ...). */
export interface LocalResourceNames {
  /** `Ref` of the `AWS::DynamoDB::GlobalTable` / `AWS::DynamoDB::Table`. */
  readonly table: string;
  /** `Ref` of the `AWS::S3::Bucket`. */
  readonly bucket: string;
  readonly region: string;
}

interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}

/** The parts of a CloudFormation template the harness reads. */
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
}

/**
 * Synthesizes `AgentFlow-dev` as `bin/app.ts` does (cdk.json's `environments.dev`, the checked
 * workspace), bundling every function with the local esbuild into `outdir`.
 * @throws Error when the workflows are not valid or synth fails
 */
export function synthesizeDevStack(outdir: string): { template: CfnTemplate; outdir: string; stackName: string } {
  const cdk = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context: { environments: unknown } };
  const app = new App({ outdir, context: cdk.context as Record<string, unknown> });
  const stackName = addEnvironmentStack(app, 'dev', loadWorkspace(), PROJECT_ROOT).stackName;
  const assembly = app.synth();
  const stack = assembly.getStackByName(stackName);
  return { template: stack.template as CfnTemplate, outdir: assembly.directory, stackName };
}

/**
 * Reads the functions and state machines of a synthesized stack. Every `Ref`, `Fn::GetAtt`,
 * `Fn::Join` and `Fn::Sub` the harness needs resolves to a local value; one it does not know
 * throws, naming it, so a new resource in the stack fails here instead of running half-wired.
 */
export function readDeployedStack(outdir: string, stackName: string, template: CfnTemplate, names: LocalResourceNames): DeployedStack {
  const assets = readAssets(outdir, stackName);
  const resources = template.Resources;
  const functionArn = (id: string) => `arn:aws:lambda:${names.region}:${LOCAL_ACCOUNT}:function:${id}`;
  const stateMachineName = (id: string) => {
    const name = resources[id]?.Properties?.StateMachineName;
    return typeof name === 'string' ? name : id;
  };
  const stateMachineArn = (id: string) => `arn:aws:states:${names.region}:${LOCAL_ACCOUNT}:stateMachine:${stateMachineName(id)}`;

  const ref = (id: string): string => {
    const pseudo: Record<string, string> = {
      'AWS::Region': names.region,
      'AWS::AccountId': LOCAL_ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': stackName,
    };
    if (pseudo[id]) return pseudo[id];
    const type = resources[id]?.Type;
    switch (type) {
      case 'AWS::DynamoDB::GlobalTable':
      case 'AWS::DynamoDB::Table':
        return names.table;
      case 'AWS::S3::Bucket':
        return names.bucket;
      case 'AWS::StepFunctions::StateMachine':
        return stateMachineArn(id);
      case 'AWS::Lambda::Function':
        return id;
      default:
        throw new Error(
          `the harness cannot resolve { Ref: ${id} } (${type ?? 'no such resource'}): give it a local value in test/deployed/assembly.ts`,
        );
    }
  };
  const getAtt = (id: string, attr: string): string => {
    const type = resources[id]?.Type;
    if (type === 'AWS::Lambda::Function' && attr === 'Arn') return functionArn(id);
    if (type === 'AWS::StepFunctions::StateMachine' && attr === 'Arn') return stateMachineArn(id);
    if (type === 'AWS::StepFunctions::StateMachine' && attr === 'Name') return stateMachineName(id);
    if ((type === 'AWS::DynamoDB::GlobalTable' || type === 'AWS::DynamoDB::Table') && attr === 'Arn') {
      return `arn:aws:dynamodb:${names.region}:${LOCAL_ACCOUNT}:table/${names.table}`;
    }
    if (type === 'AWS::S3::Bucket' && attr === 'Arn') return `arn:aws:s3:::${names.bucket}`;
    throw new Error(`the harness cannot resolve { Fn::GetAtt: [${id}, ${attr}] } (${type ?? 'no such resource'})`);
  };
  const resolve = (v: unknown): string => {
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.Ref === 'string') return ref(o.Ref);
      if (Array.isArray(o['Fn::GetAtt'])) return getAtt(String(o['Fn::GetAtt'][0]), String(o['Fn::GetAtt'][1]));
      if (Array.isArray(o['Fn::Join'])) {
        const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
        return parts.map(resolve).join(sep);
      }
      if (typeof o['Fn::Sub'] === 'string') {
        return (o['Fn::Sub'] as string).replace(/\$\{([^}]+)\}/g, (_, name: string) => {
          const [id, attr] = name.split('.');
          return attr ? getAtt(id as string, attr) : ref(id as string);
        });
      }
    }
    throw new Error(`the harness cannot resolve ${JSON.stringify(v)}`);
  };

  const functions = new Map<string, DeployedFunction>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const p = r.Properties ?? {};
    const code = p.Code as { S3Key?: unknown } | undefined;
    const key = typeof code?.S3Key === 'string' ? code.S3Key : undefined;
    const assetPath = key ? assets.get(key.replace(/\.zip$/, '')) : undefined;
    // Functions that are not ours (CDK's custom resource providers) run at deploy time, not in a workflow.
    if (!assetPath || !String(p.Runtime ?? '').startsWith('nodejs')) continue;
    const handler = String(p.Handler ?? 'index.handler');
    const dot = handler.lastIndexOf('.');
    const base = handler.slice(0, dot);
    const codeDir = join(outdir, assetPath);
    const moduleFile = ['.mjs', '.js', '.cjs'].map((ext) => join(codeDir, `${base}${ext}`)).find((f) => existsSync(f));
    if (!moduleFile) throw new Error(`function ${id}: no ${base}.mjs/.js in ${codeDir}`);
    const vars = ((p.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {}) as Record<string, unknown>;
    functions.set(id, {
      logicalId: id,
      arn: functionArn(id),
      codeDir,
      moduleFile,
      exportName: handler.slice(dot + 1),
      environment: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, resolve(v)])),
      timeoutSeconds: Number(p.Timeout ?? 3),
      memorySize: Number(p.MemorySize ?? 128),
    });
  }

  const stateMachines = new Map<string, DeployedStateMachine>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::StepFunctions::StateMachine') continue;
    const p = r.Properties ?? {};
    const subs = Object.fromEntries(
      Object.entries((p.DefinitionSubstitutions ?? {}) as Record<string, unknown>).map(([k, v]) => [k, resolve(v)]),
    );
    const text = resolve(p.DefinitionString).replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name: string) => subs[name] ?? whole);
    const name = stateMachineName(id);
    stateMachines.set(name, { logicalId: id, name, arn: stateMachineArn(id), definition: JSON.parse(text) as AslDefinition });
  }

  const byArn = new Map([...functions.values()].map((f) => [f.arn, f]));
  const isIntrinsic = (o: Record<string, unknown>) => 'Ref' in o || Object.keys(o).some((k) => k.startsWith('Fn::'));
  const resolveDeep = (v: unknown, options: { lenient?: boolean } = {}): unknown => {
    if (Array.isArray(v)) return v.map((x) => resolveDeep(x, options));
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (!isIntrinsic(o)) return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, resolveDeep(x, options)]));
      try {
        return resolve(o);
      } catch (e) {
        if (!options.lenient) throw e;
        return `unresolved:${JSON.stringify(o)}`;
      }
    }
    return v;
  };
  return {
    outdir,
    template,
    functions,
    stateMachines,
    functionByArn: (arn) => byArn.get(arn) ?? functions.get(arn.split(':').at(-1) ?? ''),
    resolveDeep,
  };
}

/** Asset hash → folder in the cloud assembly, from `<stack>.assets.json`. */
function readAssets(outdir: string, stackName: string): Map<string, string> {
  const manifest = JSON.parse(readFileSync(join(outdir, `${stackName}.assets.json`), 'utf8')) as {
    files?: Record<string, { source: { path: string } }>;
  };
  return new Map(Object.entries(manifest.files ?? {}).map(([hash, f]) => [hash, f.source.path]));
}
