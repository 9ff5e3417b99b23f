import { DEFAULT_FLEET_TAG_KEY } from '../../shared/fleet-tags.ts';
import * as z from 'zod/mini';
import { defineEnvironment, env, loadConfig } from '../../shared/config.ts';
import { VOLUME_GRACE_FLOOR, type Policy } from './model.ts';

/**
 * Environment of the purge-disk-volumes Lambda (ARCHITECTURE §6), validated at cold start. Variables beyond §6
 * (all with defaults) are documented in the README runbook.
 */
const shape = {
  FLEET_TAG_KEY: z._default(env.text(`a tag key such as ${DEFAULT_FLEET_TAG_KEY}`), DEFAULT_FLEET_TAG_KEY),
  FLEET_TAG_VALUE: env.text('the fleet tag value (the stack name)'),
  // At most 60d: a mark is verified against CloudTrail's 90-day event history, and a run must find it verifiable.
  // At least 1h: longer than any CLOUDTRAIL_LAG, so the attaches since the mark are delivered before a delete.
  VOLUME_GRACE: env.duration({ default: '24h', min: VOLUME_GRACE_FLOOR, max: '60d' }),
  CLOUDTRAIL_LAG: env
    .duration({ default: '20m', min: '5m', max: VOLUME_GRACE_FLOOR })
    .check(
      z.describe(
        'How late CloudTrail may deliver an event (it delivers 5–15 minutes late): a delete candidate with an AWS/EBS ' +
          'datapoint (published only while attached) in this long plus 5 minutes before now is held; the next run re-checks.',
      ),
    ),
  SNAPSHOT_BEFORE_DELETE: env.bool(false),
  MAX_VOLUME_DELETES_PER_RUN: env.int({ min: 1, max: 100, default: 10 }),
  ASG_NAME: env.text('an Auto Scaling group name'),
  DISK_USED_PERCENT_THRESHOLD: env.int({ min: 1, max: 99, default: 85 }),
  PRUNE_DOCUMENT_NAME: env.text('an SSM document name', /^[a-zA-Z0-9_.:/-]{3,128}$/),
  PRUNE_MAX_LOG_MB: env.int({ min: 1, max: 100_000, default: 100 }),
  // SendCommand takes at most 50 InstanceIds per call; one call per run keeps the blast radius small.
  MAX_PRUNE_INSTANCES_PER_RUN: env.int({ min: 1, max: 50, default: 10 }),
  PRUNE_WAIT: env.duration({ default: '5m', min: '0', max: '14m' }),
  PRUNE_POLL_INTERVAL: env.duration({ default: '5s', min: '100ms', max: '1m' }),
};

/**
 * The plan's policy (plan.ts) in `policy`, plus what only observe/apply need. The policy's fields are also on the
 * config itself, where observe and apply read the ones they need (the fleet tag, the group, the snapshot switch).
 */
export interface PurgeDiskVolumesConfig extends Policy {
  readonly policy: Policy;
  readonly pruneDocumentName: string;
  /** How long a run waits for the prune commands' results (bounded further by the Lambda's remaining time). */
  readonly pruneWaitMs: number;
  readonly prunePollIntervalMs: number;
}

export function loadPurgeDiskVolumesConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v): PurgeDiskVolumesConfig => {
    const policy: Policy = Object.freeze({
      fleetTag: { key: v.FLEET_TAG_KEY, value: v.FLEET_TAG_VALUE },
      volumeGraceMs: v.VOLUME_GRACE,
      cloudTrailLagMs: v.CLOUDTRAIL_LAG,
      snapshotBeforeDelete: v.SNAPSHOT_BEFORE_DELETE,
      maxVolumeDeletesPerRun: v.MAX_VOLUME_DELETES_PER_RUN,
      asgName: v.ASG_NAME,
      diskUsedPercentThreshold: v.DISK_USED_PERCENT_THRESHOLD,
      pruneMaxLogMb: v.PRUNE_MAX_LOG_MB,
      maxPruneInstancesPerRun: v.MAX_PRUNE_INSTANCES_PER_RUN,
    });
    return {
      ...policy,
      policy,
      pruneDocumentName: v.PRUNE_DOCUMENT_NAME,
      pruneWaitMs: v.PRUNE_WAIT,
      prunePollIntervalMs: v.PRUNE_POLL_INTERVAL,
    };
  });
}

export type LoadedConfig = ReturnType<typeof loadPurgeDiskVolumesConfig>;

/**
 * The stack's side of this environment (infra/constructs/jobs/purge-disk-volumes.ts): the same `shape`, so names cannot drift;
 * what each variable means is what docs/configuration.md says (npm run docs:config).
 */
export const purgeDiskVolumesEnvironment = defineEnvironment(shape, {
  FLEET_TAG_KEY: "tag key of the fleet's instances and volumes",
  FLEET_TAG_VALUE: 'tag value (the stack name); only volumes with this tag are ever touched',
  VOLUME_GRACE:
    'time from mark to delete (at least 1h, longer than any CLOUDTRAIL_LAG; at most 60d: marks are verified against ' +
    "CloudTrail's 90-day event history)",
  SNAPSHOT_BEFORE_DELETE: 'snapshot each volume before deleting it',
  MAX_VOLUME_DELETES_PER_RUN: 'deletes per run; the rest wait for the next run',
  ASG_NAME: "the fleet's Auto Scaling group",
  DISK_USED_PERCENT_THRESHOLD: 'prune instances whose root disk is at or over this percentage',
  PRUNE_DOCUMENT_NAME: 'the prune SSM Command document (created by the stack)',
  PRUNE_MAX_LOG_MB: '`MaxLogMb` passed to the document: container logs over this many MiB are truncated',
  MAX_PRUNE_INSTANCES_PER_RUN: 'instances pruned per run (one `SendCommand`)',
  PRUNE_WAIT:
    "how long a run waits for the prune results; also bounded by the Lambda's remaining time (the function's timeout is 5 minutes)",
  PRUNE_POLL_INTERVAL: 'pause between result reads',
});
