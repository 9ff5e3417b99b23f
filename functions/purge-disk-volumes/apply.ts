import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration } from '../../shared/duration.ts';
import { describeError, errorName } from '../../shared/errors.ts';
import { applyEach, type ApplyContext, type Outcome } from '../../shared/job.ts';
import type { PurgeDiskVolumesConfig } from './config.ts';
import {
  KEEP_TAG,
  MARK_TAG,
  SOURCE_VOLUME_TAG,
  type DeleteVolume,
  type MarkVolume,
  type PruneInstance,
  type PurgeAction,
  type UnmarkVolume,
} from './plan.ts';

/** AWS writes, one branch per action kind. Idempotent: a volume that no longer exists counts as done. */

export interface ApplyClients {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
}

type Config = Pick<
  PurgeDiskVolumesConfig,
  'fleetTag' | 'snapshotBeforeDelete' | 'pruneDocumentName' | 'pruneMaxLogMb' | 'pruneWaitMs' | 'prunePollIntervalMs'
>;

const VOLUME_GONE = new Set(['InvalidVolume.NotFound']);

type VolumeAction = MarkVolume | UnmarkVolume | DeleteVolume;

/** One volume action → its outcome (the dialect's `apply`; the prune commands are batched by `applyPlan`). */
export function apply(action: VolumeAction, ctx: ApplyContext<Config>, clients: Pick<ApplyClients, 'ec2'>): Promise<Outcome> {
  return applyVolumeAction(clients.ec2, action, ctx.config, ctx.signal);
}

/**
 * The whole plan. A batch, not `applyEach` over `apply`, because the prune commands go out as ONE SendCommand for
 * every instance of the run: sent first, the volume work runs while they execute on the instances, then the
 * command results are read (GetCommandInvocation per instance) within PRUNE_WAIT and the time budget.
 */
export async function applyPlan(
  actions: readonly PurgeAction[],
  ctx: ApplyContext<Config>,
  clients: ApplyClients,
): Promise<(Outcome | undefined)[]> {
  const outcomes = new Array<Outcome | undefined>(actions.length).fill(undefined);
  const pruneIdx = actions.flatMap((a, i) => (a.type === 'prune-instance' ? [i] : []));
  const volumeIdx = actions.flatMap((a, i) => (a.type === 'prune-instance' ? [] : [i]));

  const started = Date.now();
  let commandId: string | undefined;
  if (pruneIdx.length > 0 && ctx.hasTime() && !ctx.signal.aborted) {
    const prunes = pruneIdx.map((i) => actions[i] as PruneInstance);
    try {
      commandId = await sendPrune(clients.ssm, prunes, ctx.config, ctx.signal);
    } catch (error) {
      for (const i of pruneIdx) outcomes[i] = { status: 'failed', error: `SendCommand: ${describeError(error)}` };
    }
  }

  const volumeActions = volumeIdx.map((i) => actions[i] as VolumeAction);
  const volumeOutcomes = await applyEach(volumeActions, ctx, (a) => apply(a, ctx, clients));
  volumeIdx.forEach((i, k) => (outcomes[i] = volumeOutcomes[k]));

  if (commandId) {
    const ids = pruneIdx.map((i) => actions[i]!.target);
    const results = await readPruneResults(clients.ssm, commandId, ids, {
      started,
      waitMs: ctx.config.pruneWaitMs,
      intervalMs: ctx.config.prunePollIntervalMs,
      ctx,
    });
    pruneIdx.forEach((i, k) => (outcomes[i] = results[k]));
  }
  return outcomes;
}

/** The earlier name of `applyPlan`. */
export const applyActions = applyPlan;

export function applyVolumeAction(ec2: EC2Client, a: VolumeAction, config: Config, signal: AbortSignal): Promise<Outcome> {
  switch (a.type) {
    case 'mark-volume':
      return ignoreGone(async () => {
        await ec2.send(new CreateTagsCommand({ Resources: [a.target], Tags: [{ Key: MARK_TAG, Value: a.orphanedAt }] }), {
          abortSignal: signal,
        });
        return { status: 'applied', detail: { orphanedAt: a.orphanedAt } };
      });
    case 'unmark-volume':
      return ignoreGone(async () => {
        // No Value: removes the tag whatever its value.
        await ec2.send(new DeleteTagsCommand({ Resources: [a.target], Tags: [{ Key: MARK_TAG }] }), { abortSignal: signal });
        return { status: 'applied' };
      });
    case 'delete-volume':
      return deleteVolume(ec2, a, config, signal);
  }
}

async function ignoreGone(fn: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await fn();
  } catch (error) {
    if (VOLUME_GONE.has(errorName(error) ?? '')) return { status: 'skipped', reason: 'volume no longer exists' };
    throw error;
  }
}

/**
 * Re-check, (snapshot), delete. The plan decided from state observed earlier in the run; between then and now the
 * volume may have been attached, re-tagged to keep, or unmarked by someone else. So right before deleting, read
 * the volume again and delete only if it is still `available`, attached to nothing, carries the fleet tag, no keep
 * tag, and exactly the mark the plan saw. What remains is the window between this read and DeleteVolume: EC2 itself
 * refuses to delete a volume that is attaching or attached (`VolumeInUse`), which is reported as skipped.
 */
async function deleteVolume(ec2: EC2Client, a: DeleteVolume, config: Config, signal: AbortSignal): Promise<Outcome> {
  const res = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'volume-id', Values: [a.target] }] }), { abortSignal: signal });
  const v = res.Volumes?.find((x) => x.VolumeId === a.target);
  if (!v) return { status: 'applied', detail: { alreadyGone: true, sizeGiB: a.sizeGiB } };
  const tags = Object.fromEntries((v.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  const attachedTo = (v.Attachments ?? []).map((x) => x.InstanceId);
  const changed =
    v.State !== 'available' || attachedTo.length > 0
      ? `state is ${v.State}${attachedTo.length > 0 ? ` (attached to ${attachedTo.join(', ')})` : ''}`
      : tags[config.fleetTag.key] !== config.fleetTag.value
        ? `fleet tag ${config.fleetTag.key}=${config.fleetTag.value} is gone`
        : KEEP_TAG in tags && tags[KEEP_TAG]?.trim().toLowerCase() !== 'false'
          ? `now tagged ${KEEP_TAG}=${tags[KEEP_TAG]}`
          : tags[MARK_TAG] !== a.markedAt
            ? `mark changed from ${a.markedAt} to ${tags[MARK_TAG] ?? '(none)'}`
            : undefined;
  if (changed) return { status: 'skipped', reason: `re-checked before delete: ${changed}; not deleted` };

  let snapshotId: string | undefined;
  if (a.snapshot) {
    const snap = await ensureSnapshot(ec2, a, config, signal);
    if (snap.state !== 'pending' && snap.state !== 'completed') {
      return { status: 'failed', error: `snapshot ${snap.id} is ${snap.state}: volume kept`, detail: { snapshotId: snap.id } };
    }
    snapshotId = snap.id;
  }

  try {
    await ec2.send(new DeleteVolumeCommand({ VolumeId: a.target }), { abortSignal: signal });
  } catch (error) {
    const name = errorName(error);
    if (name === 'InvalidVolume.NotFound')
      return { status: 'applied', detail: { alreadyGone: true, sizeGiB: a.sizeGiB, ...(snapshotId ? { snapshotId } : {}) } };
    if (name === 'VolumeInUse')
      return { status: 'skipped', reason: 'attached between the re-check and the delete: EC2 refused (VolumeInUse); not deleted' };
    throw error;
  }
  return { status: 'applied', detail: { sizeGiB: a.sizeGiB, estMonthlyUsd: a.estMonthlyUsd, ...(snapshotId ? { snapshotId } : {}) } };
}

/**
 * Reuse a snapshot an earlier run started for this volume (a delete that failed after its snapshot), else start
 * one. Only a snapshot started after the mark stands in: the mark is the last time the volume was seen in use (a
 * use since then re-marks it), so an older snapshot may miss what was written before the volume was left alone.
 * EBS docs (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-creating-snapshot.html): "Snapshot
 * creation is asynchronous. The snapshot is created immediately, but it remains in the pending state until all
 * of data has been transferred to Amazon S3 ... The snapshot includes only the data that was written to the
 * volume at the time the snapshot was requested." The point-in-time copy is fixed once CreateSnapshot returns a
 * snapshot in state `pending` (or `completed`), so the volume may be deleted then; we never delete after `error`.
 */
async function ensureSnapshot(
  ec2: EC2Client,
  a: DeleteVolume,
  config: Config,
  signal: AbortSignal,
): Promise<{ id: string; state: string }> {
  const existing = await ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: 'volume-id', Values: [a.target] },
        { Name: `tag:${SOURCE_VOLUME_TAG}`, Values: [a.target] },
      ],
    }),
    { abortSignal: signal },
  );
  const markedMs = Date.parse(a.markedAt);
  const usable = (existing.Snapshots ?? []).find(
    (s) =>
      s.SnapshotId && (s.State === 'pending' || s.State === 'completed') && s.StartTime !== undefined && s.StartTime.getTime() >= markedMs,
  );
  if (usable) return { id: usable.SnapshotId as string, state: usable.State as string };

  const snap = await ec2.send(
    new CreateSnapshotCommand({
      VolumeId: a.target,
      Description: `purge-disk-volumes: ${a.target} before delete (orphaned since ${a.markedAt})`,
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            { Key: config.fleetTag.key, Value: config.fleetTag.value },
            { Key: SOURCE_VOLUME_TAG, Value: a.target },
            { Key: 'Name', Value: `${a.target} (deleted by purge-disk-volumes)` },
          ],
        },
      ],
    }),
    { abortSignal: signal },
  );
  if (!snap.SnapshotId) throw new Error('CreateSnapshot returned no SnapshotId');
  return { id: snap.SnapshotId, state: snap.State ?? 'unknown' };
}

// ---------- instance disks ----------

/** The prune document must finish within this on the instance side (the document's own timeout bounds the run). */
const DELIVERY_TIMEOUT_S = 600;

async function sendPrune(ssm: SSMClient, prunes: readonly PruneInstance[], config: Config, signal: AbortSignal): Promise<string> {
  // One command for every instance of this run: InstanceIds (at most 50 per call; the plan caps it at
  // MAX_PRUNE_INSTANCES_PER_RUN ≤ 50). Explicit ids, never tag targets: exactly the instances the plan chose.
  const res = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.pruneDocumentName,
      InstanceIds: prunes.map((p) => p.target),
      Parameters: { MaxLogMb: [String(config.pruneMaxLogMb)] },
      Comment: `purge-disk-volumes: prune ${prunes.length} instance(s)`.slice(0, 100),
      TimeoutSeconds: DELIVERY_TIMEOUT_S,
    }),
    { abortSignal: signal },
  );
  const id = res.Command?.CommandId;
  if (!id) throw new Error('SendCommand returned no CommandId');
  return id;
}

const TERMINAL = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
/**
 * Per-instance StatusDetails that mean the command never ran there (terminal, whatever `Status` says):
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
 */
const UNDELIVERED = new Set(['Undeliverable', 'Terminated', 'Delivery Timed Out', 'DeliveryTimedOut']);
/** No invocation for the instance yet (GetCommandInvocation: InvocationDoesNotExist). */
const NOT_REGISTERED = 'NotRegisteredYet';
/**
 * Sleep in slices of at most this, re-checking the time budget: PRUNE_POLL_INTERVAL (≤ 1m) must not outlast the
 * runner's margin (15 s).
 */
const SLEEP_SLICE_MS = 1_000;

export interface PruneResult {
  freedBytes: number;
  usedPercentBefore: number;
  usedPercentAfter: number;
}

/** The prune script's contract: its LAST stdout line is `{"freedBytes":N,"usedPercentBefore":N,"usedPercentAfter":N}`. */
export function parsePruneOutput(stdout: string | undefined): PruneResult | undefined {
  const last = (stdout ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
  if (!last) return undefined;
  try {
    const value = JSON.parse(last) as Record<string, unknown>;
    const { freedBytes, usedPercentBefore, usedPercentAfter } = value;
    if ([freedBytes, usedPercentBefore, usedPercentAfter].every((n) => typeof n === 'number' && Number.isFinite(n))) {
      return {
        freedBytes: freedBytes as number,
        usedPercentBefore: usedPercentBefore as number,
        usedPercentAfter: usedPercentAfter as number,
      };
    }
  } catch {
    // not JSON: reported as unreadable below
  }
  return undefined;
}

async function readPruneResults(
  ssm: SSMClient,
  commandId: string,
  instanceIds: readonly string[],
  { started, waitMs, intervalMs, ctx }: { started: number; waitMs: number; intervalMs: number; ctx: ApplyContext<unknown> },
): Promise<Outcome[]> {
  const deadline = started + waitMs;
  const results = new Map<string, Outcome>();
  const lastStatus = new Map<string, string>(instanceIds.map((id) => [id, NOT_REGISTERED]));
  for (;;) {
    for (const id of instanceIds) {
      if (results.has(id) || ctx.signal.aborted) continue;
      try {
        const inv = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }), { abortSignal: ctx.signal });
        const status = inv.Status ?? 'Pending';
        const undelivered = UNDELIVERED.has(inv.StatusDetails ?? '');
        lastStatus.set(id, undelivered ? (inv.StatusDetails as string) : status);
        if (undelivered && !TERMINAL.has(status)) {
          results.set(id, {
            status: 'failed',
            error: `prune command not delivered (${inv.StatusDetails}): command ${commandId}`,
            detail: { commandId, commandStatus: status },
          });
          continue;
        }
        if (!TERMINAL.has(status)) continue;
        const parsed = parsePruneOutput(inv.StandardOutputContent);
        const detail = { commandId, commandStatus: status, ...(parsed ?? { output: 'unreadable: no JSON last line' }) };
        if (status === 'Success') results.set(id, { status: 'applied', detail });
        else {
          const stderr = (inv.StandardErrorContent ?? '').trim().split('\n').at(-1)?.slice(0, 200);
          results.set(id, {
            status: 'failed',
            error: `prune command ${status} (${inv.StatusDetails ?? 'no details'})${stderr ? `: ${stderr}` : ''}`,
            detail,
          });
        }
      } catch (error) {
        // The invocation is registered a moment after SendCommand returns: not there yet = ask again.
        if (errorName(error) === 'InvocationDoesNotExist') continue;
        results.set(id, { status: 'failed', error: `GetCommandInvocation: ${describeError(error)}`, detail: { commandId } });
      }
    }
    const waitLeft = deadline - Date.now();
    if (results.size === instanceIds.length || waitLeft <= 0 || ctx.signal.aborted || !ctx.hasTime()) break;
    await pause(Math.min(intervalMs, waitLeft), ctx);
    if (ctx.signal.aborted || !ctx.hasTime()) break;
  }
  // No final status: never reported as applied. Not delivered → failed (the disk stays full and nobody would know);
  // still queued or running → skipped with the command id (it keeps running on the instance; the next run sees its disk).
  const waited = duration(Date.now() - started);
  const why = Date.now() >= deadline ? `PRUNE_WAIT ${duration(waitMs)}` : 'the Lambda time budget ran low';
  return instanceIds.map((id) => {
    const done = results.get(id);
    if (done) return done;
    const status = lastStatus.get(id) ?? NOT_REGISTERED;
    const see = `command ${commandId}; see it with aws ssm get-command-invocation --command-id ${commandId} --instance-id ${id}`;
    if (status === NOT_REGISTERED || UNDELIVERED.has(status)) {
      return {
        status: 'failed',
        error:
          `prune command never delivered: ` +
          `${status === NOT_REGISTERED ? 'no invocation for the instance (SSM agent down or not registered?)' : status} after ` +
          `${waited}: ${see}`,
        detail: { commandId, commandStatus: status },
      };
    }
    return { status: 'skipped', reason: `prune command still ${status} after ${waited} (${why}): ${see}` };
  });
}

const duration = (ms: number): string => (ms < 1_000 ? `${Math.max(0, Math.round(ms))}ms` : formatDuration(ms));

/** Sleep up to `ms`, in slices of ≤ SLEEP_SLICE_MS; return early when the time budget runs low or the run is aborted. */
async function pause(ms: number, ctx: ApplyContext<unknown>): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0 && ctx.hasTime() && !ctx.signal.aborted; left = until - Date.now()) {
    await sleep(Math.min(SLEEP_SLICE_MS, left), undefined, { signal: ctx.signal }).catch(() => undefined);
  }
}
