import { setTimeout as sleep } from 'node:timers/promises';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { mapLimit } from '../../shared/concurrency.ts';
import { describeError, errorName } from '../../shared/errors.ts';

/**
 * Run the htpasswd SSM document on instances and collect one result per instance. SendCommand takes at most
 * 50 instance ids per call; SSM's own MaxConcurrency/MaxErrors bound the fan-out inside a call. An instance
 * that SSM does not know (InvalidInstanceId on send, InvocationDoesNotExist on every poll) is reported as
 * `not-registered`; the caller decides by the instance's launch time whether that is a skip (a fresh instance
 * fetches the file in its boot script) or a failure (an old instance whose agent is down).
 * moto runs no commands and lacks ListCommandInvocations, hence GetCommandInvocation per instance.
 */

export const MAX_IDS_PER_SEND = 50;
/** Polls that may answer InvocationDoesNotExist before the instance counts as not registered. */
export const MISSING_INVOCATION_POLLS = 5;
const POLL_CONCURRENCY = 10;

export type CommandResult =
  | { readonly state: 'success'; readonly output: string }
  | { readonly state: 'failed'; readonly error: string }
  | { readonly state: 'not-registered'; readonly error: string }
  | { readonly state: 'cancelled'; readonly error: string };

export interface RunDocumentRequest {
  readonly documentName: string;
  readonly parameters: Record<string, string[]>;
  readonly instanceIds: readonly string[];
  readonly maxConcurrency: string;
  readonly maxErrors: string;
  readonly comment: string;
}

export interface RunDocumentOptions {
  readonly signal: AbortSignal;
  readonly waitMs: number;
  readonly pollIntervalMs: number;
  /** False when the Lambda's time runs low: no new send, polling stops. */
  readonly hasTime?: () => boolean;
  /** Epoch ms: no send after it, and every batch's wait ends by it (the drift check's budget). */
  readonly deadline?: number;
  /** Send no further batch after a batch with a failure (stop on errors). */
  readonly stopOnFailure?: boolean;
}

interface Pending {
  instanceId: string;
  commandId: string;
  missing: number;
  lastStatus: string;
}

/** Results by instance id; an instance with no entry was never sent to (time budget, or stopped after a failure). */
export async function runDocument(
  ssm: SSMClient,
  request: RunDocumentRequest,
  options: RunDocumentOptions,
): Promise<Map<string, CommandResult>> {
  const results = new Map<string, CommandResult>();
  const hasTime = options.hasTime ?? (() => true);
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  for (let i = 0; i < request.instanceIds.length; i += MAX_IDS_PER_SEND) {
    if (!hasTime() || options.signal.aborted || Date.now() + options.pollIntervalMs > deadline) break; // no time left to read a result
    const batch = request.instanceIds.slice(i, i + MAX_IDS_PER_SEND);
    const pending = await send(ssm, request, batch, results, options.signal);
    await poll(ssm, pending, results, options, hasTime);
    if (options.stopOnFailure && batch.some((id) => results.get(id)?.state === 'failed')) break;
  }
  return results;
}

async function send(
  ssm: SSMClient,
  request: RunDocumentRequest,
  batch: readonly string[],
  results: Map<string, CommandResult>,
  signal: AbortSignal,
): Promise<Pending[]> {
  const sendTo = async (instanceIds: readonly string[]): Promise<string> => {
    const res = await ssm.send(
      new SendCommandCommand({
        DocumentName: request.documentName,
        InstanceIds: [...instanceIds],
        Parameters: request.parameters,
        MaxConcurrency: request.maxConcurrency,
        MaxErrors: request.maxErrors,
        TimeoutSeconds: 60,
        Comment: request.comment.slice(0, 100),
      }),
      { abortSignal: signal },
    );
    const commandId = res.Command?.CommandId;
    if (!commandId) throw new Error('SendCommand answered without a CommandId');
    return commandId;
  };
  try {
    const commandId = await sendTo(batch);
    return batch.map((instanceId) => ({ instanceId, commandId, missing: 0, lastStatus: 'Pending' }));
  } catch (error) {
    if (errorName(error) !== 'InvalidInstanceId') {
      for (const id of batch) results.set(id, { state: 'failed', error: `SendCommand: ${describeError(error)}` });
      return [];
    }
  }
  // One id in the batch is unknown to SSM and the whole call was refused: send one by one to find it.
  const pending: Pending[] = [];
  for (const instanceId of batch) {
    try {
      pending.push({ instanceId, commandId: await sendTo([instanceId]), missing: 0, lastStatus: 'Pending' });
    } catch (error) {
      results.set(
        instanceId,
        errorName(error) === 'InvalidInstanceId'
          ? { state: 'not-registered', error: 'not registered with SSM yet (InvalidInstanceId)' }
          : { state: 'failed', error: `SendCommand: ${describeError(error)}` },
      );
    }
  }
  return pending;
}

async function poll(
  ssm: SSMClient,
  pending: Pending[],
  results: Map<string, CommandResult>,
  options: RunDocumentOptions,
  hasTime: () => boolean,
): Promise<void> {
  const started = Date.now();
  const deadline = Math.min(started + options.waitMs, options.deadline ?? Number.POSITIVE_INFINITY);
  let open = pending;
  while (open.length > 0) {
    await mapLimit(open, POLL_CONCURRENCY, async (p) => {
      const result = await pollOnce(ssm, p, options.signal);
      if (result) results.set(p.instanceId, result);
    });
    open = open.filter((p) => !results.has(p.instanceId));
    if (open.length === 0) break;
    if (Date.now() + options.pollIntervalMs > deadline || !hasTime() || options.signal.aborted) {
      for (const p of open) {
        results.set(
          p.instanceId,
          p.missing > 0 && p.lastStatus === 'Pending'
            ? { state: 'not-registered', error: 'not registered with SSM yet (no invocation appeared)' }
            : {
                state: 'failed',
                error:
                  `no result within ${Math.round((Date.now() - started) / 1000)}s (last status ${p.lastStatus}; command ` +
                  `${p.commandId})`,
              },
        );
      }
      return;
    }
    await pause(options.pollIntervalMs, options.signal, hasTime);
  }
}

/** Sleep `ms` in slices of ≤ 1 s, ending early once the time budget runs low (a 30 s interval must not outlast the margin). */
async function pause(ms: number, signal: AbortSignal, hasTime: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0 && hasTime() && !signal.aborted; left = until - Date.now()) {
    await sleep(Math.min(1_000, left), undefined, { signal }).catch(() => undefined);
  }
}

async function pollOnce(ssm: SSMClient, p: Pending, signal: AbortSignal): Promise<CommandResult | undefined> {
  let res;
  try {
    res = await ssm.send(new GetCommandInvocationCommand({ CommandId: p.commandId, InstanceId: p.instanceId }), { abortSignal: signal });
  } catch (error) {
    if (errorName(error) === 'InvocationDoesNotExist') {
      p.missing += 1;
      return p.missing >= MISSING_INVOCATION_POLLS
        ? { state: 'not-registered', error: 'not registered with SSM yet (InvocationDoesNotExist)' }
        : undefined;
    }
    return { state: 'failed', error: `GetCommandInvocation: ${describeError(error)}` };
  }
  const status = res.Status ?? 'Pending';
  p.lastStatus = status;
  const details = res.StatusDetails && res.StatusDetails !== status ? ` (${res.StatusDetails})` : '';
  switch (status) {
    case 'Success':
      return { state: 'success', output: res.StandardOutputContent ?? '' };
    case 'Failed':
    case 'TimedOut':
      return { state: 'failed', error: `${status}${details}${lastLine(res.StandardErrorContent)}` };
    case 'Cancelled':
    case 'Cancelling':
      return {
        state: 'cancelled',
        error: `${status}${details}: not run (SSM stops sending after MaxErrors failures, or the command was cancelled)`,
      };
    default:
      return undefined; // Pending, InProgress, Delayed
  }
}

/** The script's last stderr line (its reason: `install-htpasswd: sha256 mismatch …`), never more. */
function lastLine(text: string | undefined): string {
  const line = (text ?? '').trim().split('\n').pop()?.trim() ?? '';
  return line ? `: ${line.slice(0, 300)}` : '';
}

/** `installed sha256=<hex>`, `previous sha256=<hex|none>`, `current sha256=<hex|none>` from the script's output. */
export function parseScriptOutput(output: string): { installed?: string; previous?: string | null; current?: string | null } {
  const find = (label: string): string | null | undefined => {
    const matches = [...output.matchAll(new RegExp(`^${label} sha256=([0-9a-f]{64}|none)\\s*$`, 'gm'))];
    const value = matches.at(-1)?.[1];
    return value === undefined ? undefined : value === 'none' ? null : value;
  };
  const installed = find('installed');
  const previous = find('previous');
  const current = find('current');
  return {
    ...(installed ? { installed } : {}),
    ...(previous !== undefined ? { previous } : {}),
    ...(current !== undefined ? { current } : {}),
  };
}
