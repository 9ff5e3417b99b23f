import { CloudTrailClient, LookupEventsCommand, type Event as TrailEvent, type LookupEventsCommandInput } from '@aws-sdk/client-cloudtrail';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  type CreateTagsCommandInput,
  type DeleteTagsCommandInput,
  type DescribeVolumesCommandInput,
  type Snapshot,
  type Volume as SdkVolume,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { job } from '../../functions/purge-disk-volumes/job.ts';
import { JobFailedError } from '../../shared/errors.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';

/**
 * What the mark means (issue 12, items 6 and 7), against a small stateful EC2 and CloudTrail: EC2's volumes and
 * snapshots live in a map the mocked calls read and write, and every attach or detach the test makes is also
 * an event in CloudTrail's event history, as AWS records it.
 */

const ec2 = mockClient(EC2Client);
const trail = mockClient(CloudTrailClient);
// No AWS/EBS datapoint: nothing attached within CLOUDTRAIL_LAG of a run (that hold: purge-disk-volumes-lag.test.ts).
const cw = mockClient(CloudWatchClient);

const T0 = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const MARK = 'registry-fleet:orphaned-at';
const FLEET = { Key: 'registry-fleet', Value: 'prod' };
const HOST = 'i-00000000000000001';
const ENV = { AWS_REGION: 'us-east-1', FLEET_TAG_VALUE: 'prod', ASG_NAME: 'prod-asg', PRUNE_DOCUMENT_NAME: 'prod-prune-docker' };
const runAt = (date: Date, env: Record<string, string> = {}) =>
  createJob(job, loadPurgeDiskVolumesConfig({ ...ENV, ...env }), { clock: () => date }).run;

let volumes: Map<string, SdkVolume>;
let snapshots: Snapshot[];
let events: TrailEvent[];

function volume(id: string): string {
  volumes.set(id, { VolumeId: id, State: 'available', Size: 10, VolumeType: 'gp3', Attachments: [], Tags: [FLEET] });
  return id;
}
const tagsOf = (id: string): Record<string, string> => Object.fromEntries((volumes.get(id)?.Tags ?? []).map((t) => [t.Key!, t.Value!]));

function record(name: 'AttachVolume' | 'DetachVolume', volumeId: string, when: Date): void {
  events.push({
    EventId: `ev-${events.length}`,
    EventName: name,
    EventTime: new Date(Math.floor(when.getTime() / 1000) * 1000), // CloudTrail keeps whole seconds
    EventSource: 'ec2.amazonaws.com',
    Resources: [
      { ResourceType: 'AWS::EC2::Volume', ResourceName: volumeId },
      { ResourceType: 'AWS::EC2::Instance', ResourceName: HOST },
    ],
    CloudTrailEvent: JSON.stringify({ eventName: name, requestParameters: { volumeId, instanceId: HOST } }),
  });
}
function attach(id: string, when: Date): void {
  volumes.set(id, { ...volumes.get(id)!, State: 'in-use', Attachments: [{ VolumeId: id, InstanceId: HOST, State: 'attached' }] });
  record('AttachVolume', id, when);
}
function detach(id: string, when: Date): void {
  volumes.set(id, { ...volumes.get(id)!, State: 'available', Attachments: [] });
  record('DetachVolume', id, when);
}

/** LookupEvents as CloudTrail answers it: one lookup attribute, the time window, newest first, pages of MaxResults. */
function lookup(input: LookupEventsCommandInput) {
  const [attribute] = input.LookupAttributes ?? [];
  const start = input.StartTime?.getTime() ?? 0;
  const end = input.EndTime?.getTime() ?? Number.POSITIVE_INFINITY;
  const matching = events
    .filter((e) => attribute?.AttributeKey === 'ResourceName' && e.Resources?.some((r) => r.ResourceName === attribute.AttributeValue))
    .filter((e) => e.EventTime!.getTime() >= start && e.EventTime!.getTime() <= end)
    .sort((a, b) => b.EventTime!.getTime() - a.EventTime!.getTime());
  const size = input.MaxResults ?? 50;
  const offset = Number(input.NextToken ?? 0);
  const page = matching.slice(offset, offset + size);
  return { Events: page, ...(offset + size < matching.length ? { NextToken: String(offset + size) } : {}) };
}

beforeEach(() => {
  ec2.reset();
  trail.reset();
  cw.reset();
  cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
  volumes = new Map();
  snapshots = [];
  events = [];
  ec2.on(DescribeVolumesCommand).callsFake((input: DescribeVolumesCommandInput) => {
    const byId = input.Filters?.find((f) => f.Name === 'volume-id')?.Values;
    const byTag = input.Filters?.find((f) => f.Name === `tag:${FLEET.Key}`)?.Values;
    const all = [...volumes.values()].map((v) => structuredClone(v));
    return {
      Volumes: all.filter(
        (v) => (!byId || byId.includes(v.VolumeId!)) && (!byTag || v.Tags?.some((t) => t.Key === FLEET.Key && byTag.includes(t.Value!))),
      ),
    };
  });
  ec2.on(CreateTagsCommand).callsFake((input: CreateTagsCommandInput) => {
    for (const id of input.Resources ?? []) {
      const v = volumes.get(id);
      if (!v) continue;
      const keys = new Set(input.Tags?.map((t) => t.Key));
      v.Tags = [...(v.Tags ?? []).filter((t) => !keys.has(t.Key)), ...(input.Tags ?? [])];
    }
    return {};
  });
  ec2.on(DeleteTagsCommand).callsFake((input: DeleteTagsCommandInput) => {
    for (const id of input.Resources ?? []) {
      const v = volumes.get(id);
      if (v) v.Tags = (v.Tags ?? []).filter((t) => !input.Tags?.some((d) => d.Key === t.Key));
    }
    return {};
  });
  ec2.on(DeleteVolumeCommand).callsFake(({ VolumeId }: { VolumeId: string }) => {
    volumes.delete(VolumeId);
    return {};
  });
  ec2.on(DescribeSnapshotsCommand).callsFake(() => ({ Snapshots: snapshots }));
  trail.on(LookupEventsCommand).callsFake(lookup);
});

const byTarget = (report: Report, target: string) => report.actions.filter((a) => a.target === target);

describe('a volume used since its mark is never deleted', () => {
  it('attached and detached between run 1 and run 2: run 2 marks it again and deletes only the unused one; run 3 deletes it', async () => {
    const used = volume('vol-0000000000000a5ed');
    const unused = volume('vol-00000000000000001');

    await runAt(T0)({ skipPrune: true });
    expect(tagsOf(used)[MARK]).toBe(T0.toISOString());
    expect(tagsOf(unused)[MARK]).toBe(T0.toISOString());
    expect(trail.calls()).toHaveLength(0); // nothing to verify yet: no mark was past the grace

    // Between the daily runs someone attaches the volume, works on it, and detaches it again.
    attach(used, at(2 * H));
    detach(used, at(5 * H));

    const second = await runAt(at(25 * H))({ skipPrune: true });
    expect(volumes.has(unused)).toBe(false);
    expect(volumes.has(used)).toBe(true);
    expect(tagsOf(used)[MARK]).toBe(at(25 * H).toISOString());
    expect(byTarget(second, used)).toEqual([
      expect.objectContaining({
        type: 'mark-volume',
        status: 'applied',
        reason: `used since its mark ${T0.toISOString()}: AttachVolume ${at(2 * H).toISOString()} (${HOST}), DetachVolume ${at(5 * H).toISOString()} (${HOST}): marked again`,
      }),
    ]);
    expect(byTarget(second, unused)).toEqual([expect.objectContaining({ type: 'delete-volume', status: 'applied' })]);
    // One lookup per delete candidate, from a minute before its mark up to the run's time, by the volume id.
    expect(trail).toHaveReceivedCommandTimes(LookupEventsCommand, 2);
    for (const id of [used, unused]) {
      expect(trail).toHaveReceivedCommandWith(LookupEventsCommand, {
        LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: id }],
        StartTime: new Date(T0.getTime() - 60_000),
        EndTime: at(25 * H),
      });
    }
    expect(second.details).toMatchObject({ volumes: { history: { volumes: 2, usedSinceMark: 1, requests: 2 } } });

    // A grace after the new mark, with no use since, it goes.
    const third = await runAt(at(50 * H))({ skipPrune: true });
    expect(volumes.has(used)).toBe(false);
    expect(byTarget(third, used)).toEqual([expect.objectContaining({ type: 'delete-volume', status: 'applied' })]);
  });

  it('an attach on a later page of the history counts (every page is read)', async () => {
    const used = volume('vol-0000000000000a5ed');
    await runAt(T0)({ skipPrune: true });
    attach(used, at(1 * H));
    detach(used, at(2 * H));
    // 60 newer events on the volume (our own tags, snapshots …) push the attach to the second page.
    for (let i = 0; i < 60; i += 1) {
      events.push({
        EventId: `noise-${i}`,
        EventName: 'CreateTags',
        EventTime: at(3 * H + i * 1000),
        Resources: [{ ResourceType: 'AWS::EC2::Volume', ResourceName: used }],
      });
    }
    const report = await runAt(at(25 * H))({ skipPrune: true });
    expect(volumes.has(used)).toBe(true);
    expect(byTarget(report, used)[0]).toMatchObject({ type: 'mark-volume', status: 'applied' });
    expect(trail.commandCalls(LookupEventsCommand).length).toBeGreaterThanOrEqual(2);
  });

  it('CloudTrail unreadable: nothing is deleted, the other work is done, and the run fails after the report naming it', async () => {
    const ripe = volume('vol-00000000000000001');
    await runAt(T0)({ skipPrune: true });
    const fresh = volume('vol-0000000000000f1e5');
    trail
      .on(LookupEventsCommand)
      .rejects(Object.assign(new Error('User is not authorized to perform: cloudtrail:LookupEvents'), { name: 'AccessDeniedException' }));
    const info = vi.spyOn(logger, 'info');
    const error = await runAt(at(25 * H))({ skipPrune: true }).catch((e: unknown) => e);
    const report = (info.mock.calls.find(([m]) => m === 'job report')?.[1] as { report: Report }).report;
    info.mockRestore();
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain(
      `refused (1): delete-volume ${ripe}: attach history unreadable (CloudTrail LookupEvents: AccessDeniedException`,
    );
    expect(volumes.has(ripe)).toBe(true);
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
    expect(tagsOf(fresh)[MARK]).toBe(at(25 * H).toISOString());
    expect(report.refusals).toEqual([expect.objectContaining({ type: 'delete-volume', target: ripe })]);
  });
});

describe('the snapshot before a delete is one taken after the mark', () => {
  const withSnapshots = (date: Date) => runAt(date, { SNAPSHOT_BEFORE_DELETE: 'true' });
  const snapshotOf = (id: string, snapshotId: string, start: Date, state = 'completed'): Snapshot => ({
    SnapshotId: snapshotId,
    VolumeId: id,
    State: state as Snapshot['State'],
    StartTime: start,
    Tags: [FLEET, { Key: 'registry-fleet:source-volume', Value: id }],
  });

  beforeEach(() => {
    ec2.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0000000000000f4e5', State: 'pending' });
  });

  it('an older snapshot of the volume (before its mark) is not reused: a fresh one is taken before the delete', async () => {
    const id = volume('vol-00000000000000001');
    await runAt(T0)({ skipPrune: true });
    snapshots.push(snapshotOf(id, 'snap-00000000000000old', at(-10 * H)));
    const report = await withSnapshots(at(25 * H))({ skipPrune: true });
    expect(ec2).toHaveReceivedCommandTimes(CreateSnapshotCommand, 1);
    expect(volumes.has(id)).toBe(false);
    expect(byTarget(report, id)[0]).toMatchObject({ status: 'applied', detail: { snapshotId: 'snap-0000000000000f4e5' } });
  });

  it('a snapshot an earlier attempt took after the mark is reused', async () => {
    const id = volume('vol-00000000000000001');
    await runAt(T0)({ skipPrune: true });
    snapshots.push(snapshotOf(id, 'snap-0000000000000a11', at(24 * H)));
    const report = await withSnapshots(at(25 * H))({ skipPrune: true });
    expect(ec2).not.toHaveReceivedCommand(CreateSnapshotCommand);
    expect(byTarget(report, id)[0]).toMatchObject({ status: 'applied', detail: { snapshotId: 'snap-0000000000000a11' } });
  });

  it('after a re-mark, a snapshot from between the old mark and the use is not reused either', async () => {
    const id = volume('vol-00000000000000001');
    await runAt(T0)({ skipPrune: true });
    snapshots.push(snapshotOf(id, 'snap-000000000000mid1', at(1 * H))); // after the first mark, before the volume was used
    attach(id, at(2 * H));
    detach(id, at(3 * H));
    await withSnapshots(at(25 * H))({ skipPrune: true }); // marked again
    expect(volumes.has(id)).toBe(true);
    const report = await withSnapshots(at(50 * H))({ skipPrune: true });
    expect(ec2).toHaveReceivedCommandTimes(CreateSnapshotCommand, 1);
    expect(volumes.has(id)).toBe(false);
    expect(byTarget(report, id)[0]).toMatchObject({ status: 'applied', detail: { snapshotId: 'snap-0000000000000f4e5' } });
  });
});
