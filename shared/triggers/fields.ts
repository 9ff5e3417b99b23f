/**
 * Reading an event that has not been checked yet. `Untrusted<T>` names the fields of an AWS event type
 * (from @types/aws-lambda, or ours where it has none) without believing their types: every field is `unknown`
 * until a check narrows it, and the compiler still refuses a field name the AWS type does not have.
 */
export type Untrusted<T> = { readonly [K in keyof T]?: unknown };

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `v` is an object; its fields are the ones of `T`, unchecked. */
export const isShaped = <T>(v: unknown): v is Untrusted<T> => isObject(v);

export const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

export function time(value: unknown): { time?: string } {
  return typeof value === 'string' && value.length > 0 ? { time: value } : {};
}

/** What a value that is not an event was, for the error message. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
