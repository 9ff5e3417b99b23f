/** Errors every job shares. Each sets `name` so logs, tests and callers classify by name (STYLE §7). */

/** An event no trigger shape matches. Visible failure, never a silent no-op. */
export class UnsupportedEventError extends Error {
  override readonly name = 'UnsupportedEventError';
  constructor(received: string) {
    super(`unsupported event: ${received}`);
  }
}

/** Bad input (a manual payload or an option): thrown before anything is changed. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
}

/** Bad or missing environment: thrown at cold start so the function fails init, not the 100th invoke. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Thrown after the report is logged when any action failed, so Lambda errors, alarms and retries see it. */
export class JobFailedError extends Error {
  override readonly name = 'JobFailedError';
  /** The failed run's report (a local invoke prints it; an inventory pass keeps every shard's; Lambda serialises only name and message). */
  readonly report?: unknown;
  constructor(message: string, report?: unknown) {
    super(message);
    if (report !== undefined) this.report = report;
  }
}

/** The AWS SDK's error name (`NoSuchKey`, `InvalidVolume.NotFound`, `ThrottlingException`), if any. */
export function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** One line for a report or a log: the error's name and message, never a stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error)
    return error.message && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message || error.name;
  return String(error);
}
