import * as z from 'zod/mini';
import { defineEnvironment, env, loadConfig } from '../../shared/config.ts';
import { normalizeRoot } from '../../shared/registry-layout.ts';
import { GRACE_CEILING, GRACE_FLOOR, type GcPolicy, type RetentionRule } from './model.ts';

/**
 * Environment of collect-garbage. REGISTRY_BUCKET/REGISTRY_ROOT as purge-stale-uploads; GC_GRACE (the floor
 * protects pushes in flight); MAX_DELETES_PER_RUN; GC_RETENTION (JSON, off when unset: no tag or manifest is
 * ever deleted then).
 */
export interface CollectGarbageConfig {
  readonly bucket: string;
  readonly root: string;
  readonly policy: GcPolicy;
  readonly listConcurrency: number;
  /** The wait between the last delete and the restore re-check (sweep.ts phase 3). */
  readonly settleMs: number;
}

const ROOT_FORM = 'expected a key prefix such as /fleet/a (the registry\'s storage.s3.rootdirectory), without ".." or empty segments';
const RETENTION_FORM =
  'expected JSON like {"rules":[{"repository":"team/*","tagPrefix":"pr-","keepLast":10},{"repository":"**","untaggedAfterDays":7}]}';

const registryRoot = z.pipe(
  z._default(z.string({ error: ROOT_FORM }), ''),
  z.transform((value: string, ctx) => {
    const root = normalizeRoot(value);
    if (root.split('/').some((p) => p === '..' || p === '.') || (root !== '' && root.split('/').some((p) => p === ''))) {
      ctx.issues.push({ code: 'custom', message: ROOT_FORM, input: value });
      return z.NEVER;
    }
    return root;
  }),
);

const days = () => z.optional(z.number({ error: `expected a whole number of days from 1 to 3650` }).check(z.int(), z.gte(1), z.lte(3650)));

const Rule = z.strictObject(
  {
    repository: z.string({ error: 'expected a glob such as team/* or ** (every repository)' }).check(z.minLength(1)),
    tagPrefix: z.optional(z.string({ error: 'expected a string' }).check(z.minLength(1))),
    tagPattern: z.optional(z.string({ error: 'expected a regular expression' }).check(z.minLength(1))),
    keepLast: z.optional(z.number({ error: 'expected a whole number from 1 to 100000' }).check(z.int(), z.gte(1), z.lte(100_000))),
    expireAfterDays: days(),
    untaggedAfterDays: days(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown rule key(s) ${issue.keys.join(', ')}` : undefined) },
);

/** One rule's problem beyond its shape, or undefined. */
function ruleProblem(rule: z.output<typeof Rule>): string | undefined {
  if (rule.tagPrefix !== undefined && rule.tagPattern !== undefined) return 'give tagPrefix or tagPattern, not both';
  if (rule.tagPattern !== undefined) {
    try {
      new RegExp(rule.tagPattern);
    } catch {
      return `tagPattern ${JSON.stringify(rule.tagPattern)} is not a regular expression`;
    }
  }
  if (rule.keepLast === undefined && rule.expireAfterDays === undefined && rule.untaggedAfterDays === undefined)
    return 'a rule needs keepLast, expireAfterDays or untaggedAfterDays';
  return undefined;
}

/** GC_RETENTION: unset or empty = off. Each problem names the rule (by index) and the field. */
const retention = z.pipe(
  z._default(z.string(), ''),
  z.transform((value: string, ctx): readonly RetentionRule[] | undefined => {
    if (value.trim() === '') return undefined;
    const fail = (why: string) => {
      ctx.issues.push({ code: 'custom', message: `${why}; ${RETENTION_FORM}`, input: value });
      return z.NEVER;
    };
    let doc: unknown;
    try {
      doc = JSON.parse(value);
    } catch {
      return fail('not JSON');
    }
    const rules = (doc as { rules?: unknown } | null)?.rules;
    if (!Array.isArray(rules) || Object.keys(doc as object).some((k) => k !== 'rules'))
      return fail('expected an object with only "rules": [ ... ]');
    const out: RetentionRule[] = [];
    for (const [i, raw] of rules.entries()) {
      const r = Rule.safeParse(raw);
      if (!r.success)
        return fail(`rules[${i}]: ${r.error.issues.map((x) => `${x.path.length ? `${x.path.join('.')}: ` : ''}${x.message}`).join(', ')}`);
      const problem = ruleProblem(r.data);
      if (problem) return fail(`rules[${i}]: ${problem}`);
      out.push(Object.freeze({ ...r.data }));
    }
    return Object.freeze(out);
  }),
);

const shape = {
  REGISTRY_BUCKET: env.bucket().check(z.describe("the registry bucket (the fleet's storage.s3.bucket)")),
  REGISTRY_ROOT: registryRoot.check(z.describe("the registry's storage.s3.rootdirectory (empty: keys start docker/registry/v2/)")),
  GC_GRACE: env
    .duration({ default: '48h', min: GRACE_FLOOR, max: GRACE_CEILING })
    .check(z.describe('a blob (its data object) or a _layers link younger than this is never swept; floor 1h')),
  MAX_DELETES_PER_RUN: env
    .int({ min: 1, max: 1_000_000, default: 10_000 })
    .check(z.describe("S3 deletes per run (blob data, dangling links, expired manifests' links); the next run continues")),
  GC_RETENTION: retention.check(z.describe('retention rules as JSON (ECR-lifecycle style); unset = off, no tag or manifest deleted')),
  GC_SETTLE: env
    .duration({ default: '5s', max: '60s' })
    .check(
      z.describe(
        'wait after the last delete before the restore re-check: longer than a manifest PUT takes from its blob check to its link',
      ),
    ),
  LIST_CONCURRENCY: env.int({ min: 1, max: 64, default: 8 }).check(z.describe('repository listings and manifest reads in parallel')),
};

export function loadCollectGarbageConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v): CollectGarbageConfig => ({
    bucket: v.REGISTRY_BUCKET,
    root: v.REGISTRY_ROOT,
    policy: Object.freeze({
      graceMs: v.GC_GRACE,
      maxDeletes: v.MAX_DELETES_PER_RUN,
      ...(v.GC_RETENTION ? { retention: v.GC_RETENTION } : {}),
    }),
    listConcurrency: v.LIST_CONCURRENCY,
    settleMs: v.GC_SETTLE,
  }));
}

export type Config = ReturnType<typeof loadCollectGarbageConfig>;

/** The environment its construct sets (infra/constructs/collect-garbage.ts): the names and forms of `shape`. */
export const collectGarbageEnvironment = defineEnvironment(shape);
