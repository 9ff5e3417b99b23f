import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeError } from '../../shared/errors.ts';
import { shortSha } from '../../shared/htpasswd.ts';
import type { ApplyContext, Outcome } from '../../shared/job.ts';
import { runCommand, type CommandResult } from '../../shared/ssm-commands.ts';
import type { SyncHtpasswdConfig } from './config.ts';
import type { InstallAction, PublishAction, SyncAction } from './model.ts';
import { installRequest, parseScriptOutput } from './script.ts';

/**
 * Writes: publish first (PutObject with SSE and the sha256 in metadata; the object stays private — no ACL);
 * if publishing fails nothing is distributed. Then one SendCommand per batch of ≤ 50 instances (SSM's
 * MaxConcurrency/MaxErrors bound the fan-out and stop on errors), and one outcome per instance from its
 * GetCommandInvocation. Idempotent: installing the same file again only bumps its mtime.
 */
export async function applySync(
  actions: readonly SyncAction[],
  ctx: ApplyContext<SyncHtpasswdConfig>,
  clients: { readonly s3: S3Client; readonly ssm: SSMClient },
): Promise<(Outcome | undefined)[]> {
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
  if (installs.length === 0) return outcomes;
  const sha256 = (installs[0]?.[0] as InstallAction).sha256;
  const results = await runCommand(
    clients.ssm,
    installRequest(config, sha256),
    installs.map(([a]) => a.target),
    { signal, waitMs: config.commandWaitMs, pollIntervalMs: config.pollIntervalMs, hasTime: ctx.hasTime },
  );
  for (const [action, i] of installs) {
    const result = results.get(action.target);
    if (result) outcomes[i] = installOutcome(result, action);
  }
  return outcomes;
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

export function installOutcome(result: CommandResult, action: Pick<InstallAction, 'sha256' | 'recentlyLaunched' | 'launchTime'>): Outcome {
  const { sha256 } = action;
  switch (result.state) {
    case 'not-registered':
      // Only a new instance may be unknown to SSM. An old one has a dead agent (or lost SSM access) and keeps
      // serving its old file, a revoked user included: a failure, so the run fails and the alarm fires.
      return action.recentlyLaunched
        ? { status: 'skipped', reason: `${result.error}: its boot script installs the published file; the hourly drift check catches up` }
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
