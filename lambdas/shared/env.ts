/**
 * Reads a required environment variable.
 * @throws Error naming the variable when it is missing or empty
 */
export function requireEnv(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`environment variable ${name} is required but not set`);
  return v;
}

/** Reads an optional environment variable, with a default. */
export function optionalEnv(name: string, fallback: string): string {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : v;
}
