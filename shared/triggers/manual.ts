import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { UnsupportedEventError, ValidationError } from '../errors.ts';
import type { Json } from './fields.ts';
import type { ManualOptionsShape, Trigger } from './trigger.ts';

// zod/mini loads no locale: English, as zod classic, for the few issues without our own message.
z.config(en());

/**
 * A plain JSON payload from `aws lambda invoke` (ARCHITECTURE §3): `dryRun` and `reason` for every job, plus the
 * job's own keys, strictly (an unknown key or a key of the wrong form throws ValidationError naming it).
 */
export function toManual<Shape extends ManualOptionsShape>(event: Json, shape: Shape): Trigger<z.output<z.ZodMiniObject<Shape>>> {
  if (typeof event.source === 'string' && /^aws\./.test(event.source)) {
    throw new UnsupportedEventError(`AWS event source=${event.source} without a detail-type`);
  }
  const schema = z.strictObject({
    dryRun: z.optional(z.boolean({ error: 'expected true or false' })),
    reason: z.optional(z.string({ error: 'expected a short text' }).check(z.maxLength(500, { error: 'expected at most 500 characters' }))),
    ...shape,
  });
  const result = schema.safeParse(event);
  if (!result.success) throw new ValidationError(`invalid manual payload: ${describeIssues(result.error, schema)}`);
  const { dryRun, reason, ...options } = result.data as { dryRun?: boolean; reason?: string } & Record<string, unknown>;
  return { kind: 'manual', dryRun: dryRun === true, ...(reason ? { reason } : {}), options: options as z.output<z.ZodMiniObject<Shape>> };
}

function describeIssues(error: z.core.$ZodError, schema: z.ZodMiniObject): string {
  const allowed = Object.keys(schema.shape).join(', ');
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `unknown key "${k}" (allowed keys: ${allowed})`).join('; ');
      }
      const path = issue.path.map(String).join('.') || '(payload)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
