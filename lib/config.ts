import { z } from 'zod';

/**
 * CloudWatch Logs retention values allowed by the API, in days.
 * Source: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
 */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

/** One environment in cdk.json `context.environments.<name>`. */
export const EnvironmentConfigSchema = z.strictObject({
  /** AWS account id; default: the CLI's current account. */
  account: z
    .string()
    .regex(/^\d{12}$/, 'an AWS account id has 12 digits')
    .optional(),
  region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'use a region name such as us-east-1'),
  logRetentionDays: z.number().refine((d) => (RETENTION_DAYS as readonly number[]).includes(d), {
    message: `use one of ${RETENTION_DAYS.join(', ')}`,
  }),
  /** `destroy` deletes the table and bucket with the stack (dev); `retain` keeps them (prod). */
  removalPolicy: z.enum(['destroy', 'retain']),
  githubApiUrl: z.string().url().default('https://api.github.com'),
});
export type EnvironmentConfig = z.infer<typeof EnvironmentConfigSchema>;

/**
 * Reads the environment `name` from the `environments` context value.
 * @throws Error naming the context path and the problem, so `cdk synth` fails with it
 */
export function loadEnvironmentConfig(environments: unknown, name: string): EnvironmentConfig {
  const all = z.record(z.string(), z.unknown()).safeParse(environments);
  if (!all.success) throw new Error('cdk.json: context.environments must be an object of environments');
  const raw = all.data[name];
  if (raw === undefined) {
    throw new Error(
      `cdk.json: context.environments.${name} is not defined (known: ${Object.keys(all.data).join(', ')}); pass -c env=<name>`,
    );
  }
  const r = EnvironmentConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`cdk.json: context.environments.${name}.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}
