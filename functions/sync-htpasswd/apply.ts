import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describeError } from '../../shared/errors.ts';
import { shortSha } from '../../shared/htpasswd.ts';
import type { ApplyContext, Outcome, Outcomes, Plan } from '../../shared/job.ts';
import { runCommand, type CommandResult } from '../../shared/ssm-commands.ts';
import type { SyncHtpasswdConfig } from './config.ts';
import type { HeldOutcome, InstallAction, InstallJoinedAction, JoinedInstances, PublishAction, SyncAction } from './model.ts';
import { readFleet, readLaunchTimes, type SyncClients } from './observe.ts';
import { launchedRecently } from './plan.ts';
import { installRequest, parseScriptOutput } from './script.ts';

/**
 * Writes, as a batch (the installs go out as one SendCommand per 50 instances, after the publish they depend on):
 * publish first (PutObject with SSE and the sha256 in metadata; the object stays private — no ACL); if publishing
 * fails nothing is distributed. Then the installs, sent to every instance (MaxErrors 100 %: a failure is that
 * instance's), one outcome per instance from its GetCommandInvocation; then, after a publish, the instances that
 * joined the group during the run. Idempotent: installing the same file again only bumps its mtime.
 */
export async function apply(planned: Plan<SyncAction>, ctx: ApplyContext<SyncHtpasswdConfig>, clients: SyncClients): Promise<Outcomes> {
  const { actions } = planned;
  const outcomes = new Array<Outcome | undefined>(actions.length).fill(undefined);
  const { config, signal } = ctx;

  const publishAt = actions.findIndex((a) => a.type === 'publish-htpasswd');
  if (publishAt >= 0) {
    if (!ctx.hasTime()) return outcomes;
    const publish = actions[publishAt] as PublishAction;
    try {
      await publishFile(clients.s3, config, publish, signal);
      outcomes[publishAt] = { status: 'applied', detail: { sha256: publish.sha256 } };
    } catch (error) {
      outcomes[publishAt] = { status: 'failed', error: describeError(error) };
      return outcomes; // the instances would fetch a file that is not there: stop
    }
  }

  const installs = actions.flatMap((a, i) => (a.type === 'install-htpasswd' ? [[a, i] as const] : []));
  if (installs.length > 0) {
    const results = await install(
      clients,
      ctx,
      (installs[0]?.[0] as InstallAction).sha256,
      installs.map(([a]) => a.target),
    );
    for (const [action, i] of installs) {
      const result = results.get(action.target);
      if (result) outcomes[i] = installOutcome(result, action);
    }
  }

  const joinedAt = actions.findIndex((a) => a.type === 'install-joined-instances');
  if (joinedAt >= 0 && ctx.hasTime()) {
    const covered = new Set([...actions, ...planned.skipped].filter((a) => a.type === 'install-htpasswd').map((a) => a.target));
    outcomes[joinedAt] = await installJoined(actions[joinedAt] as InstallJoinedAction, covered, ctx, clients);
  }
  return outcomes;
}

function install(clients: SyncClients, ctx: ApplyContext<SyncHtpasswdConfig>, sha256: string, instanceIds: readonly string[]) {
  const { config, signal, hasTime } = ctx;
  return runCommand(clients.ssm, installRequest(config, sha256), instanceIds, {
    signal,
    waitMs: config.commandWaitMs,
    pollIntervalMs: config.pollIntervalMs,
    hasTime,
  });
}

/**
 * Re-read the group (right before acting, as observe would) and install on InService members the plan did not
 * cover. They launched during the run, so `ctx.now` decides their registration grace like observe's instances.
 */
async function installJoined(
  action: InstallJoinedAction,
  covered: ReadonlySet<string>,
  ctx: ApplyContext<SyncHtpasswdConfig>,
  clients: SyncClients,
): Promise<Outcome> {
  const { config, signal } = ctx;
  const fleet = await readFleet(clients.autoScaling, action.target, signal);
  const joined = fleet.inService.filter((id) => !covered.has(id));
  if (joined.length === 0) return { status: 'skipped', reason: `no instance joined ${action.target} during the run` };
  const launched = await readLaunchTimes(clients.ec2, joined, signal);
  const results = await install(clients, ctx, action.sha256, joined);
  const by: Record<keyof JoinedInstances, string[]> = { changed: [], inSync: [], failed: [], notRegistered: [] };
  const errors: string[] = [];
  for (const id of joined) {
    const result = results.get(id);
    const launchTime = launched.get(id);
    const recentlyLaunched = launchedRecently(launchTime, ctx.now, config.registrationGraceMs);
    const outcome: Outcome = result
      ? installOutcome(result, { sha256: action.sha256, recentlyLaunched, launchTime: launchTime ?? null })
      : { status: 'failed', error: 'not sent: the Lambda time budget ran low' };
    if (outcome.status === 'failed') {
      by.failed.push(id);
      errors.push(`${id} (${outcome.error})`);
    } else if (outcome.status === 'skipped') by.notRegistered.push(id);
    else (outcome.detail?.changed === false ? by.inSync : by.changed).push(id);
  }
  const detail = { joined: by };
  if (errors.length === 0) return { status: 'applied', detail };
  const count = `${errors.length} instance${errors.length === 1 ? '' : 's'}`;
  return { status: 'failed', error: `install failed on ${count} that joined during the run: ${errors.join('; ')}`, detail };
}

async function publishFile(s3: S3Client, config: SyncHtpasswdConfig, action: PublishAction, signal: AbortSignal): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: config.bucket,
      Key: config.objectKey,
      Body: action.content,
      ContentType: 'text/plain; charset=utf-8',
      CacheControl: 'no-store',
      ServerSideEncryption: config.objectSse,
      Metadata: { sha256: action.sha256 },
    }),
    { abortSignal: signal },
  );
}

export function installOutcome(
  result: CommandResult,
  action: Pick<InstallAction, 'sha256' | 'recentlyLaunched' | 'launchTime'>,
): Outcome | HeldOutcome {
  const { sha256 } = action;
  switch (result.state) {
    case 'not-registered':
      // Only a new instance may be unknown to SSM. An old one has a dead agent (or lost SSM access) and keeps
      // serving its old file, a revoked user included: a failure, so the run fails and the alarm fires.
      return action.recentlyLaunched
        ? {
            status: 'skipped',
            reason: `${result.error}: its boot script installs the published file; the hourly drift check catches up`,
            held: 'not-registered',
          }
        : {
            status: 'failed',
            error:
              `unreachable through SSM: ${result.error.replace(/ yet\b/, '')}, but launched ` +
              `${action.launchTime ?? 'at an unknown time'}, past SSM_REGISTRATION_GRACE: its SSM agent is down or it lost SSM access, ` +
              `and it keeps serving its old htpasswd; check the agent or replace the instance`,
          };
    case 'cancelled':
      return { status: 'skipped', reason: result.error };
    case 'failed':
    case 'undelivered':
    case 'unfinished': // an install that may still run is not done: the run fails and the next one re-checks
      return { status: 'failed', error: result.error };
    case 'success': {
      const { installed, previous } = parseScriptOutput(result.output);
      if (installed !== sha256) {
        return {
          status: 'failed',
          error: installed
            ? `installed sha256 ${shortSha(installed)}, expected ${shortSha(sha256)}`
            : 'the command succeeded but printed no "installed sha256=" line',
        };
      }
      const changed = previous !== sha256;
      return { status: 'applied', detail: { changed, previousSha256: previous ?? null, installedSha256: installed } };
    }
  }
}
