import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { options } from '../../functions/purge-disk-volumes/job.ts';
import { scopeOf } from '../../functions/purge-disk-volumes/plan.ts';
import { ConfigError, ValidationError } from '../../shared/errors.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

const ENV = { AWS_REGION: 'us-east-1', FLEET_TAG_VALUE: 'prod', ASG_NAME: 'prod-asg', PRUNE_DOCUMENT_NAME: 'prod-prune-docker' };

describe('loadPurgeDiskVolumesConfig', () => {
  it('applies the documented defaults', () => {
    const policy = {
      fleetTag: { key: 'registry-fleet', value: 'prod' },
      volumeGraceMs: 24 * 3_600_000,
      cloudTrailLagMs: 20 * 60_000,
      snapshotBeforeDelete: false,
      maxVolumeDeletesPerRun: 10,
      asgName: 'prod-asg',
      diskUsedPercentThreshold: 85,
      pruneMaxLogMb: 100,
      maxPruneInstancesPerRun: 10,
    };
    expect(loadPurgeDiskVolumesConfig(ENV)).toEqual({
      ...policy,
      policy,
      fleetTag: { key: 'registry-fleet', value: 'prod' },
      volumeGraceMs: 24 * 3_600_000,
      cloudTrailLagMs: 20 * 60_000,
      snapshotBeforeDelete: false,
      maxVolumeDeletesPerRun: 10,
      asgName: 'prod-asg',
      diskUsedPercentThreshold: 85,
      pruneDocumentName: 'prod-prune-docker',
      pruneMaxLogMb: 100,
      maxPruneInstancesPerRun: 10,
      pruneWaitMs: 300_000,
      prunePollIntervalMs: 5_000,
      region: 'us-east-1',
      dryRun: false,
      s3ForcePathStyle: false,
    });
  });

  it('reads every variable', () => {
    const c = loadPurgeDiskVolumesConfig({
      ...ENV,
      FLEET_TAG_KEY: 'fleet',
      VOLUME_GRACE: '3d',
      SNAPSHOT_BEFORE_DELETE: 'true',
      MAX_VOLUME_DELETES_PER_RUN: '3',
      DISK_USED_PERCENT_THRESHOLD: '70',
      PRUNE_MAX_LOG_MB: '50',
      MAX_PRUNE_INSTANCES_PER_RUN: '50',
      PRUNE_WAIT: '90s',
      PRUNE_POLL_INTERVAL: '2s',
      DRY_RUN: 'true',
    });
    expect(c).toMatchObject({
      fleetTag: { key: 'fleet', value: 'prod' },
      volumeGraceMs: 3 * 86_400_000,
      cloudTrailLagMs: 20 * 60_000,
      snapshotBeforeDelete: true,
      maxVolumeDeletesPerRun: 3,
      diskUsedPercentThreshold: 70,
      pruneMaxLogMb: 50,
      maxPruneInstancesPerRun: 50,
      pruneWaitMs: 90_000,
      prunePollIntervalMs: 2_000,
      dryRun: true,
    });
  });

  it.each([
    [{ DISK_USED_PERCENT_THRESHOLD: '0' }, 'DISK_USED_PERCENT_THRESHOLD="0" is not valid: expected a whole number from 1 to 99'],
    [{ DISK_USED_PERCENT_THRESHOLD: '100' }, 'DISK_USED_PERCENT_THRESHOLD="100" is not valid: expected a whole number from 1 to 99'],
    [{ DISK_USED_PERCENT_THRESHOLD: '85%' }, 'DISK_USED_PERCENT_THRESHOLD="85%" is not valid: expected a whole number from 1 to 99'],
    [{ VOLUME_GRACE: 'a day' }, 'VOLUME_GRACE="a day" is not valid: expected a duration'],
    [{ VOLUME_GRACE: '0' }, 'VOLUME_GRACE="0" is not valid'],
    // A mark is verified against CloudTrail's 90-day event history (README runbook).
    [{ VOLUME_GRACE: '61d' }, 'VOLUME_GRACE="61d" is not valid'],
    [{ MAX_VOLUME_DELETES_PER_RUN: '0' }, 'MAX_VOLUME_DELETES_PER_RUN="0" is not valid: expected a whole number from 1 to 100'],
    [{ MAX_PRUNE_INSTANCES_PER_RUN: '51' }, 'MAX_PRUNE_INSTANCES_PER_RUN="51" is not valid: expected a whole number from 1 to 50'],
    [{ SNAPSHOT_BEFORE_DELETE: 'yes' }, 'SNAPSHOT_BEFORE_DELETE="yes" is not valid: expected true or false'],
    [{ FLEET_TAG_VALUE: undefined }, 'FLEET_TAG_VALUE is missing'],
    [{ ASG_NAME: '' }, 'ASG_NAME="" is not valid: expected an Auto Scaling group name'],
    [{ PRUNE_DOCUMENT_NAME: undefined }, 'PRUNE_DOCUMENT_NAME is missing'],
  ])('rejects %o naming the variable', (override, message) => {
    const attempt = () => loadPurgeDiskVolumesConfig({ ...ENV, ...override });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(message);
  });
});

describe('manual payload', () => {
  it.each([
    [{ volumeIds: ['vol-1234'] }, 'volumeIds.0: expected a volume id like vol-0123456789abcdef0'],
    [{ volumeIds: ['i-0123456789abcdef0'] }, 'volumeIds.0: expected a volume id like vol-0123456789abcdef0'],
    [{ volumeIds: 'vol-0123456789abcdef0' }, 'volumeIds: expected a list of volume ids'],
    [{ volumeIds: [] }, 'volumeIds: expected at least one volume id'],
    [{ instanceIds: ['vol-0123456789abcdef0'] }, 'instanceIds.0: expected an instance id like i-0123456789abcdef0'],
    [{ skipPrune: 'yes' }, 'skipPrune: expected true or false'],
    [{ threshold: 50 }, 'unknown key "threshold"'],
    [{ force: true }, 'unknown key "force"'],
  ])('%o → ValidationError', (payload, message) => {
    const attempt = () => toTrigger(payload, options);
    expect(attempt).toThrow(ValidationError);
    expect(attempt).toThrow(message);
  });

  it('contradictions are rejected before anything is observed', () => {
    expect(() => scopeOf(toTrigger({ volumeIds: ['vol-0123456789abcdef0'], skipVolumes: true }, options))).toThrow(ValidationError);
    expect(() => scopeOf(toTrigger({ instanceIds: ['i-0123456789abcdef0'], skipPrune: true }, options))).toThrow(
      'instanceIds: expected no instanceIds together with skipPrune=true',
    );
  });
});

describe('scopeOf every sample event', () => {
  const dir = join(EVENTS_DIR, 'purge-disk-volumes');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();

  it('parses every file in events/purge-disk-volumes/', () => {
    expect(files).toEqual([
      'alarm-disk-full-asg.json',
      'alarm-disk-full.json',
      'manual-dry-run.json',
      'manual-prune-instances.json',
      'manual-volume-ids.json',
    ]);
    for (const f of files) expect(() => scopeOf(toTrigger(loadEvent(`purge-disk-volumes/${f}`), options))).not.toThrow();
  });

  it.each([
    ['purge-disk-volumes/manual-dry-run.json', { volumes: true, prune: true }],
    [
      'purge-disk-volumes/manual-volume-ids.json',
      { volumes: true, volumeIds: ['vol-0a1b2c3d4e5f60718', 'vol-0123456789abcdef0'], prune: false },
    ],
    [
      'purge-disk-volumes/manual-prune-instances.json',
      { volumes: false, prune: true, named: { ids: ['i-0abc123def4567890'], source: 'the manual payload' } },
    ],
    [
      'purge-disk-volumes/alarm-disk-full.json',
      { volumes: false, prune: true, named: { ids: ['i-0abc123def4567890'], source: 'alarm registry-disk-full-i-0abc123def4567890' } },
    ],
    ['purge-disk-volumes/alarm-disk-full-asg.json', { volumes: false, prune: true }],
    ['schedule.json', { volumes: true, prune: true }],
    ['scheduler.json', { volumes: true, prune: true }],
  ])('%s', (file, scope) => {
    expect(scopeOf(toTrigger(loadEvent(file), options))).toEqual(scope);
  });

  it('the dry-run sample is a dry run', () => {
    expect(toTrigger(loadEvent('purge-disk-volumes/manual-dry-run.json'), options)).toMatchObject({ kind: 'manual', dryRun: true });
  });
});

describe('a targeted payload acts on what it names (issue 12, item 9)', () => {
  const I = 'i-0123456789abcdef0';
  const V = 'vol-0123456789abcdef0';
  it.each([
    [{ instanceIds: [I] }, { volumes: false, prune: true, named: { ids: [I], source: 'the manual payload' } }],
    [{ volumeIds: [V] }, { volumes: true, volumeIds: [V], prune: false }],
    [
      { instanceIds: [I], volumeIds: [V] },
      { volumes: true, volumeIds: [V], prune: true, named: { ids: [I], source: 'the manual payload' } },
    ],
    [{}, { volumes: true, prune: true }],
    [{ skipPrune: true }, { volumes: true, prune: false }],
  ])('%o → %o', (payload, scope) => {
    expect(scopeOf(toTrigger(payload, options))).toEqual(scope);
  });
});
