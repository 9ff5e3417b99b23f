import { formatDuration } from '../../shared/duration.ts';
import { renderHtpasswd, sha256Hex, shortSha, WARN_BCRYPT_COST_ABOVE } from '../../shared/htpasswd.ts';
import type { Plan } from '../../shared/job.ts';
import {
  NOT_REGISTERED_REASON,
  type InstallAction,
  type InstallHeld,
  type InstallJoinedAction,
  type PublishAction,
  type SyncAction,
  type SyncPolicy,
  type SyncState,
} from './model.ts';
import type { ResolvedUser, UserProblem } from './users.ts';

/**
 * Pure: (state, policy, now) → Plan. Guards: an invalid entry or an empty user set (unless allowed) throws
 * InvalidUserSetError — the run fails and nothing is published or distributed (one bad parameter never locks
 * everyone out, and never silently drops a user). Then: publish when the rendered file differs from the
 * published object (body or its sha256 metadata), and install on every instance that does not serve the
 * rendered sha256 (all InService instances when forced, or when the run could not check them). An instance
 * SSM does not know is skipped only while it is new (launched within SSM_REGISTRATION_GRACE: its boot script
 * installs the file); an older one gets an install, which fails if SSM still does not know it — so a dead
 * agent, which leaves a revoked user working on that instance, fails the run instead of passing every hour.
 */

export class InvalidUserSetError extends Error {
  override readonly name = 'InvalidUserSetError';
}

/** Launched less than `graceMs` before `now`; an unknown launch time counts as old (fail rather than skip). */
export function launchedRecently(launchTime: string | undefined, now: Date, graceMs: number): boolean {
  const at = launchTime === undefined ? Number.NaN : Date.parse(launchTime);
  return Number.isFinite(at) && now.getTime() - at < graceMs;
}

export function describeProblems(problems: readonly UserProblem[]): string {
  return problems.map((p) => `${p.parameter}: ${p.problem}`).join('; ');
}

/** The rendered file of a valid user set, with its sha256. Throws InvalidUserSetError on a refused set. */
export function desiredFile(
  users: readonly ResolvedUser[],
  problems: readonly UserProblem[],
  policy: Pick<SyncPolicy, 'parameterPath' | 'allowEmptyUserSet'>,
): { content: string; sha256: string } {
  const path = policy.parameterPath;
  if (problems.length > 0) {
    throw new InvalidUserSetError(
      `refusing to publish: ${problems.length} invalid parameter${problems.length === 1 ? '' : 's'} under ${path} (nothing was ` +
        `changed): ${describeProblems(problems)}`,
    );
  }
  if (users.length === 0 && !policy.allowEmptyUserSet) {
    throw new InvalidUserSetError(
      `refusing to publish an empty user set: no parameters under ${path} (a missing or mistyped path?); set ALLOW_EMPTY_USER_SET=true ` +
        `to lock every user out on purpose`,
    );
  }
  const content = renderHtpasswd(users);
  return { content, sha256: sha256Hex(content) };
}

export function plan(state: SyncState, policy: SyncPolicy, now: Date): Plan<SyncAction> {
  if (state.kind === 'out-of-scope') return { actions: [], skipped: [] };
  const { content, sha256 } = desiredFile(state.resolution.users, state.resolution.problems, policy);
  const target = `s3://${policy.bucket}/${policy.objectKey}`;
  const actions: SyncAction[] = [];
  const skipped: SyncAction[] = [];

  const published = state.published;
  const publishReason = !published
    ? 'no published file yet'
    : published.sha256 !== sha256
      ? `users changed (published sha256 ${shortSha(published.sha256)}, rendered ${shortSha(sha256)})`
      : published.metadataSha256 !== sha256
        ? 'the object lacks the right sha256 metadata'
        : undefined;
  if (publishReason) {
    const publish = {
      type: 'publish-htpasswd' as const,
      target,
      reason: publishReason,
      sha256,
      users: state.resolution.users.length,
      bytes: Buffer.byteLength(content),
      // The first file is published even in a dry run: the fleet's registries do not start without it, and
      // creating it overwrites, revokes and installs nothing (a dry run still installs nowhere).
      ...(published ? {} : { dryRunSafe: true as const }),
    };
    actions.push(Object.defineProperty(publish, 'content', { value: content, enumerable: false }) as PublishAction);
  }

  for (const { instanceId, drift, launchTime } of state.instances) {
    const recentlyLaunched = launchedRecently(launchTime, now, policy.registrationGraceMs);
    const install = (reason: string, held?: InstallHeld): InstallAction => ({
      type: 'install-htpasswd',
      target: instanceId,
      reason,
      sha256,
      recentlyLaunched,
      launchTime: launchTime ?? null,
      ...(held ? { held } : {}),
    });
    if (policy.forceDistribute) actions.push(install('forceDistribute'));
    else if (!drift) actions.push(install(`not checked: installing sha256 ${shortSha(sha256)}`));
    else if (drift.state === 'not-registered' && recentlyLaunched) skipped.push(install(NOT_REGISTERED_REASON, 'not-registered'));
    else if (drift.state === 'not-registered') {
      const age = launchTime ? `launched ${formatDuration(now.getTime() - Date.parse(launchTime))} ago` : 'launch time unknown';
      actions.push(
        install(`unknown to SSM (${drift.reason}) but ${age}, past SSM_REGISTRATION_GRACE: trying to install sha256 ${shortSha(sha256)}`),
      );
    } else if (drift.state === 'unknown')
      actions.push(install(`drift check failed (${drift.reason}): installing sha256 ${shortSha(sha256)}`));
    else if (drift.sha256 === sha256) skipped.push(install(`in sync (sha256 ${shortSha(sha256)})`, 'in-sync'));
    else actions.push(install(`serves sha256 ${shortSha(drift.sha256)}, want ${shortSha(sha256)}`));
  }
  if (publishReason) actions.push(installJoined(policy, sha256));
  return { actions, skipped };
}

/**
 * Members are listed before the drift check (up to DRIFT_CHECK_BUDGET) and the file is published after: an
 * instance Pending at observe time fetched the previous file at boot. So a publish is followed by a re-read of
 * the group and an install on every InService member this plan did not cover (its boot script's re-check of the
 * published sha256 covers one still Pending then).
 */
function installJoined(policy: SyncPolicy, sha256: string): InstallJoinedAction {
  return {
    type: 'install-joined-instances',
    target: policy.asgName,
    reason: `after publishing sha256 ${shortSha(sha256)}: install on instances that joined the group during the run`,
    sha256,
  };
}

/** Report lines for hashes whose cost makes every authenticated request slow. */
export function costWarnings(users: readonly ResolvedUser[]): string[] {
  return users
    .filter((u) => u.cost > WARN_BCRYPT_COST_ABOVE)
    .map(
      (u) =>
        `${u.user}: bcrypt cost ${u.cost} > ${WARN_BCRYPT_COST_ABOVE}: the registry pays it on every authenticated request (≈ 71 ms at ` +
        `10, ≈ 279 ms at 12); rehash at a lower cost`,
    );
}
