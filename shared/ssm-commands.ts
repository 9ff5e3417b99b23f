import { setTimeout as sleep } from 'node:timers/promises';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { mapLimit } from './concurrency.ts';
import { describeError, errorName } from './errors.ts';

/**
 * The one SSM Run Command engine (issue 17 §3): send a document to explicit instance ids (at most 50 per
 * SendCommand), poll GetCommandInvocation per instance within a wait, a deadline and the run's time budget, and
 * answer ONE neutral result per instance. What a result means for a job (a skip, a failure) and what the
 * script printed are the caller's: this module never parses output.
 *
 * One rule for the ways a command does not finish:
 * - `not-registered`: SSM does not know the instance (InvalidInstanceId on send, or InvocationDoesNotExist on
 *   MISSING_INVOCATION_POLLS polls (a caller may allow more), or still no invocation when the wait ends);
 * - `undelivered`: SSM knows it but could not deliver (StatusDetails Undeliverable, Terminated, Delivery Timed Out);
 *   the command never ran there;
 * - `failed`: the document ran and failed or timed out on the instance, or an SSM call failed;
 * - `cancelled`: SSM did not run it (MaxErrors reached, or someone cancelled);
 * - `unfinished`: still Pending/InProgress/Delayed when the wait, the deadline or the time budget ended; it may
 *   still run on the instance (the caller decides: sync-htpasswd fails it, a prune may skip it).
 * moto runs no commands and lacks ListCommandInvocations, hence GetCommandInvocation per instance.
 */

export const MAX_IDS_PER_SEND = 50;
/** Polls that may answer InvocationDoesNotExist before the instance counts as not registered. */
export const MISSING_INVOCATION_POLLS = 5;
const POLL_CONCURRENCY = 10;
/** Sleep in slices of at most this, re-checking the budget: a 30 s interval must not outlast the runner's 15 s margin. */
const SLEEP_SLICE_MS = 1_000;
/**
 * Per-instance StatusDetails that mean the command never ran there (terminal, whatever `Status` says):
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
 */
const UNDELIVERED = new Set(['Undeliverable', 'Terminated', 'Delivery Timed Out', 'DeliveryTimedOut']);

export type CommandResult =
  | { readonly state: 'success'; readonly commandId?: string; readonly output: string }
  | {
      readonly state: 'failed';
      readonly commandId?: string;
      /** Set when the document ran and failed there: its Status, StatusDetails, stdout and stderr as SSM gave them. */
      readonly status?: string;
      readonly statusDetails?: string;
      readonly output?: string;
      readonly stderr?: string;
      readonly error: string;
    }
  | { readonly state: 'not-registered'; readonly commandId?: string; readonly error: string }
  | { readonly state: 'undelivered'; readonly commandId: string; readonly status: string; readonly error: string }
  | { readonly state: 'cancelled'; readonly commandId?: string; readonly error: string }
  | { readonly state: 'unfinished'; readonly commandId: string; readonly status: string; readonly error: string };

export interface CommandRequest {
  readonly documentName: string;
  readonly parameters: Record<string, string[]>;
  /** SendCommand MaxConcurrency / MaxErrors (SSM's defaults when absent: 50 and 0). */
  readonly maxConcurrency?: string;
  readonly maxErrors?: string;
  /** SendCommand TimeoutSeconds: how long SSM tries to deliver (the document's own timeout bounds the run). */
  readonly timeoutSeconds: number;
  readonly comment: string;
  /**
   * When SSM refuses a send because an id is unknown (InvalidInstanceId): true (the default) sends one by one to
   * find that id; false fails every instance of the send with SSM's error (purge-disk-volumes' prune: one refused
   * SendCommand fails the run's prunes, as it always did).
   */
  readonly splitOnInvalidInstanceId?: boolean;
}

export interface WaitOptions {
  readonly signal: AbortSignal;
  /** How long to wait for one command's results, counted from its send. */
  readonly waitMs: number;
  readonly pollIntervalMs: number;
  /** The run's time budget (ctx.hasTime): false = no new send, polling stops. */
  readonly hasTime?: () => boolean;
  /** Epoch ms: no send after it, and every wait ends by it (e.g. a drift check's own budget). */
  readonly deadline?: number;
  /**
   * InvocationDoesNotExist answers before the instance counts as not registered (default MISSING_INVOCATION_POLLS).
   * POSITIVE_INFINITY: an invocation may still appear until the wait ends (the prune's rule).
   */
  readonly missingInvocationPolls?: number;
  /**
   * false (the default): the wait ends once a full poll interval no longer fits. true: the rest of the wait is slept
   * and read once more at its end, so a command that finishes in the last interval is still seen (the prune's rule).
   */
  readonly pollAtDeadline?: boolean;
}

interface Invocation {
  readonly instanceId: string;
  readonly commandId: string;
  missing: number;
  lastStatus: string;
}

/** One SendCommand's invocations, and the instances it could not send to (already answered). */
export interface SentCommand {
  readonly sentAt: number;
  readonly invocations: readonly Invocation[];
  readonly results: Map<string, CommandResult>;
}

/**
 * Send to every instance in batches of ≤ 50 and wait for each batch's results before the next. An instance with
 * no entry in the map was never sent to (time budget, deadline or abort). Every batch is sent whatever the
 * earlier ones answered: a failure on one instance is that instance's.
 */
export async function runCommand(
  ssm: SSMClient,
  request: CommandRequest,
  instanceIds: readonly string[],
  options: WaitOptions,
): Promise<Map<string, CommandResult>> {
  const results = new Map<string, CommandResult>();
  for (let i = 0; i < instanceIds.length; i += MAX_IDS_PER_SEND) {
    if (!canStart(options)) break;
    const batch = instanceIds.slice(i, i + MAX_IDS_PER_SEND);
    const sent = await sendCommand(ssm, request, batch, options.signal);
    for (const [id, result] of await awaitResults(ssm, sent, options)) results.set(id, result);
  }
  return results;
}

/** True while a new send could still read its result: budget left, not aborted, a poll interval before the deadline. */
export function canStart(options: WaitOptions): boolean {
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  return (options.hasTime?.() ?? true) && !options.signal.aborted && Date.now() + options.pollIntervalMs <= deadline;
}

/**
 * One SendCommand to ≤ 50 explicit instance ids (never tag targets: exactly the instances the caller chose). If SSM
 * refuses the call because one id is unknown (InvalidInstanceId), it is sent one by one to find that id.
 */
export async function sendCommand(
  ssm: SSMClient,
  request: CommandRequest,
  instanceIds: readonly string[],
  signal: AbortSignal,
): Promise<SentCommand> {
  if (instanceIds.length > MAX_IDS_PER_SEND)
    throw new Error(`sendCommand: ${instanceIds.length} instance ids, at most ${MAX_IDS_PER_SEND}`);
  const sentAt = Date.now();
  const results = new Map<string, CommandResult>();
  const invocation = (instanceId: string, commandId: string): Invocation => ({ instanceId, commandId, missing: 0, lastStatus: 'Pending' });
  try {
    const commandId = await sendTo(ssm, request, instanceIds, signal);
    return { sentAt, invocations: instanceIds.map((id) => invocation(id, commandId)), results };
  } catch (error) {
    if (errorName(error) !== 'InvalidInstanceId' || request.splitOnInvalidInstanceId === false) {
      for (const id of instanceIds) results.set(id, { state: 'failed', error: `SendCommand: ${describeError(error)}` });
      return { sentAt, invocations: [], results };
    }
  }
  const invocations: Invocation[] = [];
  for (const instanceId of instanceIds) {
    try {
      invocations.push(invocation(instanceId, await sendTo(ssm, request, [instanceId], signal)));
    } catch (error) {
      results.set(
        instanceId,
        errorName(error) === 'InvalidInstanceId'
          ? { state: 'not-registered', error: 'not registered with SSM yet (InvalidInstanceId)' }
          : { state: 'failed', error: `SendCommand: ${describeError(error)}` },
      );
    }
  }
  return { sentAt, invocations, results };
}

async function sendTo(ssm: SSMClient, request: CommandRequest, instanceIds: readonly string[], signal: AbortSignal): Promise<string> {
  const res = await ssm.send(
    new SendCommandCommand({
      DocumentName: request.documentName,
      InstanceIds: [...instanceIds],
      Parameters: request.parameters,
      ...(request.maxConcurrency !== undefined ? { MaxConcurrency: request.maxConcurrency } : {}),
      ...(request.maxErrors !== undefined ? { MaxErrors: request.maxErrors } : {}),
      TimeoutSeconds: request.timeoutSeconds,
      Comment: request.comment.slice(0, 100),
    }),
    { abortSignal: signal },
  );
  const commandId = res.Command?.CommandId;
  if (!commandId) throw new Error('SendCommand answered without a CommandId');
  return commandId;
}

/**
 * Poll until every invocation of `sent` has a final result, or the wait (from `sent.sentAt`), the deadline, the
 * time budget or the signal ends it; then every open invocation is `not-registered` (no invocation ever appeared)
 * or `unfinished`. One result per instance of the send.
 */
export async function awaitResults(ssm: SSMClient, sent: SentCommand, options: WaitOptions): Promise<Map<string, CommandResult>> {
  const results = new Map(sent.results);
  const hasTime = options.hasTime ?? (() => true);
  const deadline = Math.min(sent.sentAt + options.waitMs, options.deadline ?? Number.POSITIVE_INFINITY);
  let open = sent.invocations.filter((p) => !results.has(p.instanceId));
  while (open.length > 0) {
    await mapLimit(open, POLL_CONCURRENCY, async (p) => {
      const result = await pollOnce(ssm, p, options.signal, options.missingInvocationPolls ?? MISSING_INVOCATION_POLLS);
      if (result) results.set(p.instanceId, result);
    });
    open = open.filter((p) => !results.has(p.instanceId));
    if (open.length === 0) break;
    const left = deadline - Date.now();
    if (left <= 0 || (left < options.pollIntervalMs && !options.pollAtDeadline) || !hasTime() || options.signal.aborted) {
      for (const p of open) results.set(p.instanceId, endOfWait(p, Date.now() - sent.sentAt));
      break;
    }
    await pause(Math.min(options.pollIntervalMs, left), options.signal, hasTime);
  }
  return results;
}

function endOfWait(p: Invocation, waitedMs: number): CommandResult {
  if (p.missing > 0 && p.lastStatus === 'Pending') {
    return { state: 'not-registered', commandId: p.commandId, error: 'not registered with SSM yet (no invocation appeared)' };
  }
  return {
    state: 'unfinished',
    commandId: p.commandId,
    status: p.lastStatus,
    error: `no result within ${Math.round(waitedMs / 1000)}s (last status ${p.lastStatus}; command ${p.commandId})`,
  };
}

/** Sleep `ms` in slices of ≤ 1 s, ending early once the time budget runs low or the run is aborted. */
async function pause(ms: number, signal: AbortSignal, hasTime: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0 && hasTime() && !signal.aborted; left = until - Date.now()) {
    await sleep(Math.min(SLEEP_SLICE_MS, left), undefined, { signal }).catch(() => undefined);
  }
}

async function pollOnce(ssm: SSMClient, p: Invocation, signal: AbortSignal, missingPolls: number): Promise<CommandResult | undefined> {
  const { commandId } = p;
  let res;
  try {
    res = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: p.instanceId }), { abortSignal: signal });
  } catch (error) {
    // The invocation is registered a moment after SendCommand returns: not there yet = ask again, a few times.
    if (errorName(error) === 'InvocationDoesNotExist') {
      p.missing += 1;
      return p.missing >= missingPolls
        ? { state: 'not-registered', commandId, error: 'not registered with SSM yet (InvocationDoesNotExist)' }
        : undefined;
    }
    return { state: 'failed', commandId, error: `GetCommandInvocation: ${describeError(error)}` };
  }
  const status = res.Status ?? 'Pending';
  p.lastStatus = status;
  const details = res.StatusDetails && res.StatusDetails !== status ? ` (${res.StatusDetails})` : '';
  if (UNDELIVERED.has(res.StatusDetails ?? '')) {
    return { state: 'undelivered', commandId, status, error: `not delivered (${res.StatusDetails}): command ${commandId}` };
  }
  switch (status) {
    case 'Success':
      return { state: 'success', commandId, output: res.StandardOutputContent ?? '' };
    case 'Failed':
    case 'TimedOut':
      return {
        state: 'failed',
        commandId,
        status,
        ...(res.StatusDetails !== undefined ? { statusDetails: res.StatusDetails } : {}),
        output: res.StandardOutputContent ?? '',
        stderr: res.StandardErrorContent ?? '',
        error: `${status}${details}${lastLine(res.StandardErrorContent)}`,
      };
    case 'Cancelled':
    case 'Cancelling':
      return {
        state: 'cancelled',
        commandId,
        error: `${status}${details}: not run (SSM stops sending after MaxErrors failures, or the command was cancelled)`,
      };
    default:
      return undefined; // Pending, InProgress, Delayed
  }
}

/** The script's last stderr line (its reason, e.g. `install-htpasswd: sha256 mismatch …`), never more. */
function lastLine(text: string | undefined): string {
  const line = (text ?? '').trim().split('\n').pop()?.trim() ?? '';
  return line ? `: ${line.slice(0, 300)}` : '';
}
