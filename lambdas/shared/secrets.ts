import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { z } from 'zod';

/**
 * Reads a JSON secret from Secrets Manager (cached for 5 minutes by Powertools Parameters) and
 * returns one string field of it.
 * @throws Error naming the secret and field when either is missing
 */
export async function secretField(secretName: string, field: string): Promise<string> {
  const value = await getSecret(secretName, { transform: 'json', maxAge: 300 });
  const parsed = z.record(z.string(), z.unknown()).safeParse(value);
  const v = parsed.success ? parsed.data[field] : undefined;
  if (typeof v !== 'string' || v === '') throw new Error(`secret ${secretName} has no string field "${field}"`);
  return v;
}
