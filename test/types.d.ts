declare module 'asl-validator' {
  interface ValidationResult {
    isValid: boolean;
    errors: Array<{ 'Error code': string; Message: string }>;
  }
  export default function validator(definition: unknown, options?: { checkPaths?: boolean; checkArn?: boolean }): ValidationResult;
}
