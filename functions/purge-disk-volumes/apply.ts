import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { formatDuration } from '../../shared/duration.ts';
import { errorName } from '../../shared/errors.ts';
import { applyEach, type ApplyContext, type Outcome, type Outcomes } from '../../shared/job.ts';
import {
  awaitResults,
  canStart,
  sendCommand,
  type CommandRequest,
  type CommandResult,
  type WaitOptions,
} from '../../shared/ssm-commands.ts';
import type { PurgeDiskVolumesConfig } from './config.ts';
import {
  KEEP_TAG,
  MARK_TAG,
  SOURCE_VOLUME_TAG,
  type DeleteVolume,
  type MarkVolume,
  type PruneInstance,
  type PurgePlan,
  type UnmarkVolume,
} from './model.ts';

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

/**
 * The whole plan (the dialect's `apply`). A batch, not one `applyEach` over every action, because the prune
 * commands go out as ONE SendCommand for every instance of the run: sent first, the volume work runs while they
 * execute on the instances, then the command results are read (GetCommandInvocation per instance) within
 * PRUNE_WAIT and the time budget. Sending and reading are shared/ssm-commands.ts's; what a result means for a
 * prune (and its freed bytes) is `pruneOutcome`'s.
 */
export async function apply({ actions }: Pick<PurgePlan, 'actions'>, ctx: ApplyContext<Config>, clients: ApplyClients): Promise<Outcomes> {
  const outcomes = new Array<Outcome | undefined>(actions.length).fill(undefined);
  const pruneIdx = actions.flatMap((a, i) => (a.type === 'prune-instance' ? [i] : []));
  const volumeIdx = actions.flatMap((a, i) => (a.type === 'prune-instance' ? [] : [i]));

  const prunes = pruneIdx.map((i) => actions[i] as PruneInstance);
  const wait = pruneWait(ctx);
  // Sent before the volume work so the commands run meanwhile; the wait counts from the send.
  const sent =
    prunes.length > 0 && canStart(wait)
      ? await sendCommand(clients.ssm, pruneRequest(prunes, ctx.config), ids(prunes), ctx.signal)
      : undefined;

  const volumeActions = volumeIdx.map((i) => actions[i] as VolumeAction);
  const volumeOutcomes = await applyEach(volumeActions, ctx, (a) => applyVolumeAction(clients.ec2, a, ctx.config, ctx.signal));
  volumeIdx.forEach((i, k) => (outcomes[i] = volumeOutcomes[k]));

  if (sent) {
    const results = await awaitResults(clients.ssm, sent, wait);
    const end = endOfWait(sent.sentAt, wait.waitMs);
    pruneIdx.forEach((i, k) => {
      const id = prunes[k]!.target;
      outcomes[i] = pruneOutcome(id, results.get(id), end);
    });
  }
  return outcomes;
}

function applyVolumeAction(ec2: EC2Client, a: VolumeAction, config: Config, signal: AbortSignal): Promise<Outcome> {
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

/**
 * How long SSM tries to deliver the prune document (SendCommand TimeoutSeconds); the document's own timeout bounds
 * the run on the instance.
 */
const DELIVERY_TIMEOUT_S = 600;

const ids = (prunes: readonly PruneInstance[]): string[] => prunes.map((p) => p.target);

/**
 * One command for every instance of this run: at most 50 ids per SendCommand, and the plan caps the run at
 * MAX_PRUNE_INSTANCES_PER_RUN ≤ 50. SSM's MaxConcurrency / MaxErrors defaults apply. A refused send (an unknown id
 * too) fails every prune of the run, naming SSM's error: the job's rule before the shared engine, kept.
 */
function pruneRequest(prunes: readonly PruneInstance[], config: Config): CommandRequest {
  return {
    documentName: config.pruneDocumentName,
    parameters: { MaxLogMb: [String(config.pruneMaxLogMb)] },
    timeoutSeconds: DELIVERY_TIMEOUT_S,
    comment: `purge-disk-volumes: prune ${prunes.length} instance(s)`,
    splitOnInvalidInstanceId: false,
  };
}

/**
 * PRUNE_WAIT from the send, polled every PRUNE_POLL_INTERVAL within the time budget (the engine sleeps in ≤ 1 s
 * slices, so a 1-minute interval never outlasts the runner's 15 s margin). The prune's own rules: the last read
 * lands at the end of PRUNE_WAIT, and a missing invocation is asked for until then.
 */
function pruneWait(ctx: ApplyContext<Config>): WaitOptions {
  return {
    signal: ctx.signal,
    waitMs: ctx.config.pruneWaitMs,
    pollIntervalMs: ctx.config.prunePollIntervalMs,
    hasTime: () => ctx.hasTime(),
    pollAtDeadline: true,
    missingInvocationPolls: Number.POSITIVE_INFINITY,
  };
}

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

/** No invocation for the instance (GetCommandInvocation: InvocationDoesNotExist), as `commandStatus`. */
const NOT_REGISTERED = 'NotRegisteredYet';

interface EndOfWait {
  readonly waited: string;
  /** True when PRUNE_WAIT ended the wait, false when the time budget (or an abort) did. */
  readonly waitOver: boolean;
  readonly waitMs: number;
}

/** How the wait ended, for the report's wording only (elapsed time, not a decision: apply takes none by the clock). */
function endOfWait(sentAt: number, waitMs: number): EndOfWait {
  const waitedMs = Date.now() - sentAt;
  return { waited: duration(waitedMs), waitOver: waitedMs >= waitMs, waitMs };
}

/**
 * The engine's neutral result → the prune's outcome. Never applied without a final status. Still queued or
 * running → skipped with the command id (it keeps running on the instance; the next run sees its disk). Not
 * delivered or no invocation → failed (the disk stays full and nobody would know), like a failed command.
 */
function pruneOutcome(instanceId: string, r: CommandResult | undefined, end: EndOfWait): Outcome {
  if (!r) return { status: 'failed', error: 'prune command: no result from the SSM engine' };
  const see = `command ${r.commandId}; see it with aws ssm get-command-invocation --command-id ${r.commandId} --instance-id ${instanceId}`;
  const cmd = r.commandId ? { commandId: r.commandId } : {};
  switch (r.state) {
    case 'success':
      return { status: 'applied', detail: { ...cmd, commandStatus: 'Success', ...readOutput(r.output) } };
    case 'failed': {
      if (r.status === undefined) return { status: 'failed', error: r.error, ...(r.commandId ? { detail: cmd } : {}) };
      const stderr = (r.stderr ?? '').trim().split('\n').at(-1)?.slice(0, 200);
      return {
        status: 'failed',
        error: `prune command ${r.status} (${r.statusDetails ?? 'no details'})${stderr ? `: ${stderr}` : ''}`,
        detail: { ...cmd, commandStatus: r.status, ...readOutput(r.output) },
      };
    }
    case 'undelivered':
      return { status: 'failed', error: `prune command ${r.error}`, detail: { ...cmd, commandStatus: r.status } };
    case 'cancelled':
      return { status: 'failed', error: `prune command ${r.error}`, detail: cmd };
    case 'not-registered':
      if (!r.commandId) return { status: 'failed', error: r.error };
      return {
        status: 'failed',
        error:
          'prune command never delivered: no invocation for the instance (SSM agent down or not registered?) ' +
          `after ${end.waited}: ${see}`,
        detail: { ...cmd, commandStatus: NOT_REGISTERED },
      };
    case 'unfinished': {
      const why = end.waitOver ? `PRUNE_WAIT ${duration(end.waitMs)}` : 'the Lambda time budget ran low';
      return { status: 'skipped', reason: `prune command still ${r.status} after ${end.waited} (${why}): ${see}` };
    }
  }
}

/** The freed bytes and usage, or a note that the script's last line was unreadable (never guessed). */
const readOutput = (stdout: string | undefined): PruneResult | { output: string } =>
  parsePruneOutput(stdout) ?? { output: 'unreadable: no JSON last line' };

const duration = (ms: number): string => (ms < 1_000 ? `${Math.max(0, Math.round(ms))}ms` : formatDuration(ms));
