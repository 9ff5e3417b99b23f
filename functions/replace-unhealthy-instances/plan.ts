import { formatDuration } from '../../shared/duration.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { Action, Plan } from '../../shared/job.ts';
import type { ReplaceConfig } from './config.ts';
import { REPLACING_TAG, type Fleet, type Member, type Request } from './model.ts';

/**
 * The pure decision of replace-unhealthy-instances: (fleet, policy, request, now) → actions and skipped
 * candidates, each skip with the guard that stopped it. No SDK, no environment, no clock.
 *
 * Definitions (the README runbook repeats them):
 * - A member is *unhealthy* when it is InService and its target is `unhealthy` or an EC2 status check
 *   (instance or system) is `impaired`. `initial`, `draining`, `unused`, `unavailable` and unregistered targets are not.
 * - *Fleet unhealthy percent* = 100 × unhealthy members / InService members (grace or not: a new instance
 *   failing its checks is evidence of a shared outage too). The circuit breaker opens when it is MORE than
 *   MAX_UNHEALTHY_PERCENT: exactly at the threshold (2 of 4 at 50) it stays closed and the job acts.
 * - A *candidate* is an unhealthy member past GRACE_PERIOD since its EC2 launch, seen unhealthy (and
 *   marked) for at least UNHEALTHY_CONFIRM, or a member named in a manual `instanceIds` (operator's call:
 *   health and confirmation are not required, the grace period and the other guards still are).
 */

export type Guard =
  | 'circuit-open'
  | 'in-flight'
  | 'process-suspended'
  | 'max-replacements-per-run'
  | 'grace-period'
  | 'confirming'
  | 'not-in-service'
  | 'not-a-member'
  | 'not-named'
  | 'replacement-in-progress'
  | 'replacement-stalled'
  | 'no-headroom';

export type Cause = 'target-unhealthy' | 'ec2-impaired' | 'named';

export type ReplacePath = 'set-instance-health' | 'launch-then-terminate';

export type ReplaceAction = Action & {
  readonly type: 'mark-unhealthy' | 'unmark' | 'set-instance-health' | 'raise-desired' | 'terminate-replaced' | 'replace-instance';
  readonly causes?: readonly Cause[];
  /** The guard that skipped this candidate (skipped entries only). */
  readonly guard?: Guard;
  /** mark-unhealthy and raise-desired: the tag value written. */
  readonly markedAt?: string;
  /** raise-desired: desired capacity before → after. */
  readonly desiredFrom?: number;
  readonly desiredTo?: number;
  /** The circuit breaker was bypassed by a manual `force` for this instance. */
  readonly forced?: boolean;
};

export interface Assessment {
  readonly nothingToDo?: string;
  readonly path: ReplacePath;
  readonly maintenancePolicy: string;
  readonly inService: number;
  readonly healthy: number;
  readonly unhealthy: number;
  readonly byCause: { readonly targetUnhealthy: number; readonly ec2Impaired: number };
  readonly unhealthyPercent: number;
  readonly maxUnhealthyPercent: number;
  readonly circuitOpen: boolean;
  readonly inFlight: readonly string[];
  readonly suspended: readonly string[];
  readonly candidates: readonly { readonly instanceId: string; readonly causes: readonly Cause[]; readonly ageSeconds: number | null }[];
  readonly guards: readonly Guard[];
  readonly forced: readonly string[];
  readonly stalled: readonly string[];
  readonly alarm?: { readonly instanceId?: string; readonly targetGroup?: string; readonly targetGroupMatches?: boolean };
}

export interface ReplacementPlan extends Plan<ReplaceAction> {
  readonly assessment: Assessment;
}

/** Processes that, when suspended, stop a replacement: the group could not launch, replace or terminate. */
export const BLOCKING_PROCESSES = ['Launch', 'Terminate', 'ReplaceUnhealthy'] as const;

const IN_FLIGHT_LIFECYCLE = /^(Pending|Terminating|Warmed:Pending|Warmed:Terminating)/;

export function causesOf(member: Member): ('target-unhealthy' | 'ec2-impaired')[] {
  if (member.lifecycle !== 'InService') return [];
  const causes: ('target-unhealthy' | 'ec2-impaired')[] = [];
  if (member.target?.state === 'unhealthy') causes.push('target-unhealthy');
  if (member.instanceStatus === 'impaired' || member.systemStatus === 'impaired') causes.push('ec2-impaired');
  return causes;
}

const servesTraffic = (m: Member): boolean =>
  m.lifecycle === 'InService' && m.asgHealth === 'Healthy' && m.target?.state === 'healthy' && causesOf(m).length === 0;

/** Epoch ms truncated to the second (EC2 launch times have second precision); undefined when unparsable. */
const secondOf = (iso: string | undefined): number | undefined => {
  const t = iso === undefined ? Number.NaN : Date.parse(iso);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000) * 1000;
};

const ageMs = (iso: string | undefined, now: Date): number | undefined => {
  const t = iso === undefined ? Number.NaN : Date.parse(iso);
  return Number.isNaN(t) ? undefined : now.getTime() - t;
};

/** `force` only with `instanceIds`; every id well formed (the options schema checks the form). */
export function checkManualRequest(request: Request): void {
  if (request.kind !== 'manual') return;
  if (request.force && !request.instanceIds?.length) {
    throw new ValidationError(
      'invalid manual payload: force: expected together with instanceIds (force bypasses the circuit breaker for the named instances only)',
    );
  }
}

export function planReplacements(fleet: Fleet, policy: ReplaceConfig, request: Request, now: Date): ReplacementPlan {
  checkManualRequest(request);
  const { group, members } = fleet;
  const byId = new Map(members.map((m) => [m.id, m]));
  const named = request.kind === 'manual' ? [...new Set(request.instanceIds ?? [])] : [];
  const nonMembers = named.filter((id) => !byId.has(id));
  if (nonMembers.length > 0) {
    throw new ValidationError(
      `invalid manual payload: instanceIds: ${nonMembers.join(', ')} ${nonMembers.length === 1 ? 'is not a member' : 'are not members'} ` +
        `of Auto Scaling group ${group.name} (members: ${members.map((m) => m.id).join(', ') || 'none'})`,
    );
  }
  const force = request.kind === 'manual' && request.force === true;
  const alarmInstance = request.kind === 'alarm' ? request.instanceId : undefined;

  // ---- assessment: counts, breaker, in-flight, suspended processes, path
  const inService = members.filter((m) => m.lifecycle === 'InService');
  const unhealthy = inService.filter((m) => causesOf(m).length > 0);
  const byCause = {
    targetUnhealthy: unhealthy.filter((m) => causesOf(m).includes('target-unhealthy')).length,
    ec2Impaired: unhealthy.filter((m) => causesOf(m).includes('ec2-impaired')).length,
  };
  // Integer comparison: exactly at the threshold is NOT open.
  const circuitOpen = unhealthy.length * 100 > policy.maxUnhealthyPercent * inService.length;
  const unhealthyPercent = inService.length === 0 ? 0 : Math.round((1000 * unhealthy.length) / inService.length) / 10;

  const inFlight: string[] = [];
  for (const m of members) if (IN_FLIGHT_LIFECYCLE.test(m.lifecycle)) inFlight.push(`${m.id} is ${m.lifecycle}`);
  for (const m of inService) if (m.asgHealth !== 'Healthy') inFlight.push(`${m.id} is marked ${m.asgHealth} (the group is replacing it)`);
  const groupHealthy = inService.filter((m) => m.asgHealth === 'Healthy').length;
  if (group.desired > groupHealthy) inFlight.push(`desired capacity ${group.desired} > ${groupHealthy} healthy InService`);
  for (const a of fleet.activitiesInProgress) inFlight.push(`scaling activity ${a.status}: ${a.description}`);
  for (const r of fleet.instanceRefreshes) inFlight.push(`instance refresh ${r.id} is ${r.status}`);
  const suspended = BLOCKING_PROCESSES.filter((p) => group.suspendedProcesses.includes(p));

  const minHealthy = group.maintenancePolicy?.minHealthyPercentage;
  const path: ReplacePath = minHealthy !== undefined && minHealthy >= 100 ? 'set-instance-health' : 'launch-then-terminate';
  const maintenancePolicy = group.maintenancePolicy
    ? `MinHealthyPercentage ${minHealthy ?? 'unset'}, MaxHealthyPercentage ${group.maintenancePolicy.maxHealthyPercentage ?? 'unset'}`
    : 'none';

  const alarm =
    request.kind === 'alarm'
      ? {
          ...(request.instanceId ? { instanceId: request.instanceId } : {}),
          ...(request.targetGroup
            ? { targetGroup: request.targetGroup, targetGroupMatches: policy.targetGroupArn.endsWith(`:${request.targetGroup}`) }
            : {}),
        }
      : undefined;

  const actions: ReplaceAction[] = [];
  const skipped: ReplaceAction[] = [];
  const guards = new Set<Guard>();
  const stalled: string[] = [];
  const forced: string[] = [];
  const skip = (target: string, guard: Guard, detail: string, extra: Partial<ReplaceAction> = {}): void => {
    guards.add(guard);
    skipped.push({ type: 'replace-instance', target, reason: `${guard}: ${detail}`, guard, ...extra });
  };

  const base = {
    path,
    maintenancePolicy,
    inService: inService.length,
    healthy: inService.length - unhealthy.length,
    unhealthy: unhealthy.length,
    byCause,
    unhealthyPercent,
    maxUnhealthyPercent: policy.maxUnhealthyPercent,
    circuitOpen,
    inFlight,
    suspended,
    ...(alarm ? { alarm } : {}),
  };

  // An alarm that is not in ALARM plans nothing (the runner also short-circuits it).
  if (request.kind === 'alarm' && request.state !== 'ALARM') {
    return {
      actions,
      skipped,
      assessment: { ...base, nothingToDo: `alarm is ${request.state}`, candidates: [], guards: [], forced, stalled },
    };
  }

  if (alarmInstance && !byId.has(alarmInstance))
    skip(alarmInstance, 'not-a-member', `the alarm names ${alarmInstance}, which is not a member of ${group.name}`);

  // ---- classify every member
  const breakerText =
    `${unhealthy.length} of ${inService.length} InService instances unhealthy (${unhealthyPercent}% > ` +
    `${policy.maxUnhealthyPercent}%): likely a shared dependency outage`;
  const eligible: { member: Member; causes: Cause[]; forced: boolean }[] = [];
  const candidates: Assessment['candidates'][number][] = [];
  for (const m of members) {
    if (m.replacingSince) continue; // handled by the capacity-preserving path below
    const causes: Cause[] = causesOf(m);
    const isNamed = named.includes(m.id);
    if (isNamed) causes.push('named');
    if (causes.length === 0) {
      if (m.unhealthySince && m.lifecycle === 'InService') {
        actions.push({ type: 'unmark', target: m.id, reason: `healthy again (unhealthy since ${m.unhealthySince})` });
      }
      continue;
    }
    const age = ageMs(m.launchTime, now);
    candidates.push({ instanceId: m.id, causes, ageSeconds: age === undefined ? null : Math.floor(age / 1000) });
    if (m.lifecycle !== 'InService') {
      skip(m.id, 'not-in-service', `${m.id} is ${m.lifecycle}: never acted on`, { causes });
      continue;
    }
    if (named.length > 0 && !isNamed) {
      skip(m.id, 'not-named', `the manual run names only ${named.join(', ')}`, { causes });
      continue;
    }
    if (age === undefined || age < policy.gracePeriodMs) {
      const launched = age === undefined ? 'launch time unknown' : `launched ${formatDuration(age)} ago`;
      skip(m.id, 'grace-period', `${launched}, grace period ${formatDuration(policy.gracePeriodMs)}`, { causes });
      continue;
    }
    const bypass = isNamed && force;
    if (circuitOpen && !bypass) {
      // The confirmation restarts after the outage: stragglers of a recovery must not look long-confirmed.
      if (m.unhealthySince) actions.push({ type: 'unmark', target: m.id, reason: `circuit-open: confirmation restarts after the outage` });
      skip(m.id, 'circuit-open', breakerText, { causes });
      continue;
    }
    if (!isNamed && policy.unhealthyConfirmMs > 0) {
      const seen = ageMs(m.unhealthySince, now);
      if (seen === undefined) {
        actions.push({
          type: 'mark-unhealthy',
          target: m.id,
          reason:
            `first seen unhealthy (${causes.join(', ')}); replace if still unhealthy after ` +
            `${formatDuration(policy.unhealthyConfirmMs)}`,
          causes,
          markedAt: now.toISOString(),
        });
        guards.add('confirming');
        continue;
      }
      if (seen < policy.unhealthyConfirmMs) {
        skip(
          m.id,
          'confirming',
          `unhealthy since ${m.unhealthySince} (${formatDuration(seen)}), replace after ${formatDuration(policy.unhealthyConfirmMs)}`,
          { causes },
        );
        continue;
      }
    }
    eligible.push({ member: m, causes, forced: bypass && circuitOpen });
  }

  // ---- the capacity-preserving path in progress: finish it before starting anything else.
  // Terminating with decrement is safe only while the raise is in effect and its replacement serves, so the
  // tag alone (left behind by a failed raise, or a raise a scale-in undid) never leads to a terminate.
  const replacing = members.filter((m) => m.replacingSince);
  let terminating: string | undefined;
  for (const x of replacing) {
    const since = x.replacingSince as string;
    const before = x.desiredBeforeRaise;
    const others = members.filter((m) => m.id !== x.id && m.lifecycle === 'InService');
    // Healthy members not being replaced must make up desired capacity once every tagged one is gone.
    const kept = others.filter((m) => !m.replacingSince && m.asgHealth === 'Healthy').length;
    const whole = kept >= group.desired - replacing.length;
    // The replacement: a serving member launched at or after the tag (EC2 launch times are to the second).
    const taggedAt = secondOf(since);
    const fresh = others.find(
      (m) => !m.replacingSince && servesTraffic(m) && taggedAt !== undefined && (secondOf(m.launchTime) ?? -1) >= taggedAt,
    );
    // The newest InService member must serve too before the old one goes.
    const newest = [...others].sort((a, b) => (b.launchTime ?? '').localeCompare(a.launchTime ?? '') || b.id.localeCompare(a.id))[0];
    const ready = inFlight.length === 0 && whole && fresh !== undefined && newest !== undefined && servesTraffic(newest);
    const waited = ageMs(since, now) ?? 0;
    const state = [
      newest ? `newest member ${newest.id}: ${newest.lifecycle}, target ${newest.target?.state ?? 'not registered'}` : 'no other member',
      ...(fresh ? [] : [`no member launched since ${since} serves`]),
      ...(whole ? [] : [`${kept} healthy members not being replaced < desired ${group.desired} - ${replacing.length} being replaced`]),
    ].join('; ');
    const untag =
      `remove ${REPLACING_TAG} from ${x.id} once desired capacity is what the group should run (the job then replaces ` + `${x.id} afresh)`;
    if (x.lifecycle !== 'InService') {
      skip(x.id, 'replacement-in-progress', `${x.id} (replacing since ${since}) is ${x.lifecycle}: the group is handling it`);
    } else if (suspended.includes('Terminate')) {
      skip(x.id, 'process-suspended', `Terminate is suspended on ${group.name}; ${x.id} stays until it is resumed`);
    } else if (before === undefined) {
      stalled.push(x.id);
      skip(
        x.id,
        'replacement-stalled',
        `${REPLACING_TAG} on ${x.id} (${since}) does not record the desired capacity before the raise: cannot verify the raise, not ` +
          `terminating with decrement (desired now ${group.desired}); ${untag}`,
      );
    } else if (group.desired < before + 1) {
      stalled.push(x.id);
      skip(
        x.id,
        'replacement-stalled',
        `desired capacity ${group.desired} is not above ${before}, the desired before the raise at ${since}: the raise is gone ` +
          `(SetDesiredCapacity failed or a scale-in undid it), not terminating with decrement; ${untag}`,
      );
    } else if (ready && terminating === undefined) {
      terminating = x.id;
      actions.push({
        type: 'terminate-replaced',
        target: x.id,
        reason: `replacement ${fresh.id} serves; ${others.length} others InService, desired ${group.desired} → ${group.desired - 1}`,
      });
    } else if (ready) {
      skip(x.id, 'replacement-in-progress', `one terminate-replaced per run: ${terminating} goes first`);
    } else if (waited >= policy.replacementTimeoutMs) {
      stalled.push(x.id);
      skip(
        x.id,
        'replacement-stalled',
        `raised desired capacity at ${since} (${formatDuration(waited)} ago) and the replacement does not serve yet (${state}); check ` +
          `the group's activities`,
      );
    } else {
      skip(x.id, 'replacement-in-progress', `waiting for the replacement of ${x.id} to serve (${inFlight[0] ?? state})`);
    }
  }

  // ---- guards for new replacements, in order; then the per-run limit
  eligible.sort(
    (a, b) =>
      rank(a.member) - rank(b.member) ||
      (a.member.unhealthySince ?? '').localeCompare(b.member.unhealthySince ?? '') ||
      (a.member.launchTime ?? '').localeCompare(b.member.launchTime ?? '') ||
      a.member.id.localeCompare(b.member.id),
  );
  function rank(m: Member): number {
    if (m.id === alarmInstance) return 0;
    const i = named.indexOf(m.id);
    return i >= 0 ? 1 + i : 1000;
  }
  const started: string[] = [];
  for (const { member: m, causes, forced: isForced } of eligible) {
    if (replacing.length > 0) {
      skip(m.id, 'replacement-in-progress', `one replacement at a time: ${replacing.map((r) => r.id).join(', ')} is being replaced`, {
        causes,
      });
    } else if (inFlight.length > 0) {
      skip(m.id, 'in-flight', inFlight.join('; '), { causes });
    } else if (suspended.length > 0) {
      skip(m.id, 'process-suspended', `${suspended.join(', ')} suspended on ${group.name}`, { causes });
    } else if (path === 'launch-then-terminate' && group.desired + 1 > group.max) {
      skip(
        m.id,
        'no-headroom',
        `no maintenance policy that launches before terminating, and desired ${group.desired} = max ${group.max}: cannot add the ` +
          `replacement first`,
        { causes },
      );
    } else if (started.length >= policy.maxReplacementsPerRun) {
      skip(m.id, 'max-replacements-per-run', `at most ${policy.maxReplacementsPerRun} per run`, { causes });
    } else if (path === 'launch-then-terminate' && started.length > 0) {
      // Each raise is to desired + 1 from the same observation: a second one would launch nothing.
      skip(
        m.id,
        'replacement-in-progress',
        `one replacement at a time without a launch-before-terminate policy: ${started.join(', ')} goes first`,
        { causes },
      );
    } else {
      started.push(m.id);
      const why = `${causes.join(', ')}${isForced ? ` (FORCED past the open circuit breaker: ${breakerText})` : ''}`;
      if (isForced) forced.push(m.id);
      const extra = { causes, ...(isForced ? { forced: true } : {}) };
      if (path === 'set-instance-health') {
        actions.push({
          type: 'set-instance-health',
          target: m.id,
          reason: `${why}; the maintenance policy launches the replacement before terminating`,
          ...extra,
        });
      } else {
        actions.push({
          type: 'raise-desired',
          target: m.id,
          reason: `${why}; no launch-before-terminate policy: add one instance now, terminate ${m.id} once the new one serves`,
          markedAt: now.toISOString(),
          desiredFrom: group.desired,
          desiredTo: group.desired + 1,
          ...extra,
        });
      }
    }
  }

  return { actions, skipped, assessment: { ...base, candidates, guards: [...guards], forced, stalled } };
}
