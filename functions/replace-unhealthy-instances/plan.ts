import { formatDuration } from '../../shared/duration.ts';
import { ValidationError } from '../../shared/errors.ts';
import {
  followUpName,
  REPLACING_TAG,
  type Assessment,
  type Cause,
  type Fleet,
  type FleetState,
  type Guard,
  type Member,
  type ReplaceAction,
  type ReplacementPlan,
  type ReplacePath,
  type ReplacePolicy,
  type Request,
} from './model.ts';

/**
 * The pure decision of replace-unhealthy-instances: (fleet + request, policy, now) → actions and skipped
 * candidates, each skip with the guard that stopped it. No SDK, no environment, no clock.
 *
 * Definitions (the README runbook repeats them):
 * - A member is *unhealthy* when it is InService and its target is `unhealthy` or an EC2 status check
 *   (instance or system) is `impaired`. `initial`, `draining`, `unused`, `unavailable` and unregistered targets are not.
 * - *Fleet unhealthy percent* = 100 × unhealthy members / InService members (grace or not: a new instance
 *   failing its checks is evidence of a shared outage too). The circuit breaker opens when it is MORE than
 *   MAX_UNHEALTHY_PERCENT and at least two members are unhealthy: exactly at the threshold (2 of 4 at 50) it
 *   stays closed and the job acts; one broken member alone (a one-instance fleet) is no evidence of a shared outage.
 * - A *candidate* is an unhealthy member past GRACE_PERIOD since its EC2 launch, seen unhealthy (and
 *   marked) for at least UNHEALTHY_CONFIRM, or a member named in a manual `instanceIds` (operator's call:
 *   health and confirmation are not required, the grace period and the other guards still are).
 * - The *replacement budget*: at most REPLACEMENT_BUDGET replacements start per REPLACEMENT_BUDGET_WINDOW
 *   (the group's ledger tag); past it nothing new is replaced (`replacement-budget-exhausted`).
 *
 * The plan is built in named steps: reach → assess → (nothing to do?) → classify members → continue the
 * replacements in progress → start new ones → schedule the follow-ups of the marks.
 */

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

/** The pure plan of the dialect: everything it needs is in the state (the fleet and its request), the policy and now. */
export function plan(state: FleetState, policy: ReplacePolicy, now: Date): ReplacementPlan {
  const scope = reachOf(state, state.request);
  const facts = assess(state, policy, state.request);
  const base = { ...facts.assessment, budget: budgetOf(state, policy, now, false) };
  const idle = nothingToDo(state, state.request, now);
  if (idle)
    return { actions: [], skipped: [], assessment: { ...base, nothingToDo: idle, candidates: [], guards: [], forced: [], stalled: [] } };

  const b = new Builder();
  if (scope.alarmInstance && !scope.byId.has(scope.alarmInstance)) {
    b.skip(scope.alarmInstance, 'not-a-member', `the alarm names ${scope.alarmInstance}, which is not a member of ${state.group.name}`);
  }
  const { eligible, candidates } = classifyMembers(state, policy, now, scope, facts, b);
  const replacing = continueReplacements(state, policy, now, scope, facts, b);
  const exhausted = startReplacements(state, policy, now, scope, facts, replacing, eligible, b);
  scheduleFollowUps(policy, b);
  const assessment = { ...base, budget: budgetOf(state, policy, now, exhausted), candidates, guards: [...b.guards], forced: b.forced };
  return { actions: b.actions, skipped: b.skipped, assessment: { ...assessment, stalled: b.stalled } };
}

/** What the steps add to: actions, skipped candidates (each with its guard), and the lists the report carries. */
class Builder {
  readonly actions: ReplaceAction[] = [];
  readonly skipped: ReplaceAction[] = [];
  readonly guards = new Set<Guard>();
  readonly stalled: string[] = [];
  readonly forced: string[] = [];

  skip(target: string, guard: Guard, detail: string, extra: Partial<ReplaceAction> = {}): void {
    this.guards.add(guard);
    this.skipped.push({ type: 'replace-instance', target, reason: `${guard}: ${detail}`, guard, ...extra });
  }

  stall(target: string, detail: string): void {
    this.stalled.push(target);
    this.skip(target, 'replacement-stalled', detail);
  }
}

// Step 1: reach — who the request names, and a clear error for a non-member

interface Reach {
  readonly byId: ReadonlyMap<string, Member>;
  readonly named: readonly string[];
  readonly force: boolean;
  readonly alarmInstance?: string;
  /** A follow-up acts on its one instance only; the sweep looks after the others. */
  readonly focus?: string;
}

function reachOf(fleet: Fleet, request: Request): Reach {
  checkManualRequest(request);
  const { group, members } = fleet;
  const byId = new Map(members.map((m) => [m.id, m]));
  const named = request.kind === 'manual' ? [...new Set(request.instanceIds ?? [])] : [];
  const nonMembers = named.filter((id) => !byId.has(id));
  if (nonMembers.length > 0) {
    const verb = nonMembers.length === 1 ? 'is not a member' : 'are not members';
    throw new ValidationError(
      `invalid manual payload: instanceIds: ${nonMembers.join(', ')} ${verb} ` +
        `of Auto Scaling group ${group.name} (members: ${members.map((m) => m.id).join(', ') || 'none'})`,
    );
  }
  return {
    byId,
    named,
    force: request.kind === 'manual' && request.force === true,
    ...(request.kind === 'alarm' && request.instanceId ? { alarmInstance: request.instanceId } : {}),
    ...(request.kind === 'follow-up' ? { focus: request.instanceId } : {}),
  };
}

// Step 2: assess — counts, the breaker, what is in flight, suspended processes, the path

interface Facts {
  readonly assessment: Omit<Assessment, 'candidates' | 'guards' | 'forced' | 'stalled' | 'budget'>;
  readonly breakerText: string;
}

function assess(fleet: Fleet, policy: ReplacePolicy, request: Request): Facts {
  const { group, members } = fleet;
  const inService = members.filter((m) => m.lifecycle === 'InService');
  const unhealthy = inService.filter((m) => causesOf(m).length > 0);
  const byCause = {
    targetUnhealthy: unhealthy.filter((m) => causesOf(m).includes('target-unhealthy')).length,
    ec2Impaired: unhealthy.filter((m) => causesOf(m).includes('ec2-impaired')).length,
  };
  // Integer comparison: exactly at the threshold is NOT open. One unhealthy member is never a shared outage:
  // a one-instance fleet whose instance broke is repaired (the budget stops a loop if the cause is shared).
  const circuitOpen = unhealthy.length >= 2 && unhealthy.length * 100 > policy.maxUnhealthyPercent * inService.length;
  const unhealthyPercent = inService.length === 0 ? 0 : Math.round((1000 * unhealthy.length) / inService.length) / 10;
  const minHealthy = group.maintenancePolicy?.minHealthyPercentage;
  const path: ReplacePath = minHealthy !== undefined && minHealthy >= 100 ? 'set-instance-health' : 'launch-then-terminate';
  const maintenancePolicy = group.maintenancePolicy
    ? `MinHealthyPercentage ${minHealthy ?? 'unset'}, MaxHealthyPercentage ${group.maintenancePolicy.maxHealthyPercentage ?? 'unset'}`
    : 'none';
  const alarm = alarmOf(request, policy);
  return {
    assessment: {
      path,
      maintenancePolicy,
      inService: inService.length,
      healthy: inService.length - unhealthy.length,
      unhealthy: unhealthy.length,
      byCause,
      unhealthyPercent,
      maxUnhealthyPercent: policy.maxUnhealthyPercent,
      circuitOpen,
      inFlight: inFlightOf(fleet),
      suspended: BLOCKING_PROCESSES.filter((p) => group.suspendedProcesses.includes(p)),
      ...(alarm ? { alarm } : {}),
      ...(request.kind === 'follow-up'
        ? { followUp: { instanceId: request.instanceId, ...(request.markedAt ? { markedAt: request.markedAt } : {}) } }
        : {}),
    },
    breakerText:
      `${unhealthy.length} of ${inService.length} InService instances unhealthy (${unhealthyPercent}% > ` +
      `${policy.maxUnhealthyPercent}%): likely a shared dependency outage`,
  };
}

/** Anything the group is already doing: a new replacement waits for it. */
function inFlightOf(fleet: Fleet): string[] {
  const { group, members } = fleet;
  const inService = members.filter((m) => m.lifecycle === 'InService');
  const inFlight: string[] = [];
  for (const m of members) if (IN_FLIGHT_LIFECYCLE.test(m.lifecycle)) inFlight.push(`${m.id} is ${m.lifecycle}`);
  for (const m of inService) if (m.asgHealth !== 'Healthy') inFlight.push(`${m.id} is marked ${m.asgHealth} (the group is replacing it)`);
  const groupHealthy = inService.filter((m) => m.asgHealth === 'Healthy').length;
  if (group.desired > groupHealthy) inFlight.push(`desired capacity ${group.desired} > ${groupHealthy} healthy InService`);
  for (const a of fleet.activitiesInProgress) inFlight.push(`scaling activity ${a.status}: ${a.description}`);
  for (const r of fleet.instanceRefreshes) inFlight.push(`instance refresh ${r.id} is ${r.status}`);
  return inFlight;
}

function alarmOf(request: Request, policy: ReplacePolicy): Assessment['alarm'] {
  if (request.kind !== 'alarm') return undefined;
  return {
    ...(request.instanceId ? { instanceId: request.instanceId } : {}),
    ...(request.targetGroup
      ? { targetGroup: request.targetGroup, targetGroupMatches: policy.targetGroupArn.endsWith(`:${request.targetGroup}`) }
      : {}),
  };
}

/** The replacement budget as of now: ledger entries inside the window. */
function budgetOf(fleet: Fleet, policy: ReplacePolicy, now: Date, exhausted: boolean): Assessment['budget'] {
  const inWindow = spentIn(fleet, policy, now);
  const oldest = inWindow[0];
  const nextAt =
    inWindow.length >= policy.replacementBudget && oldest
      ? new Date(Date.parse(oldest) + policy.replacementBudgetWindowMs).toISOString()
      : undefined;
  return {
    spent: inWindow.length,
    limit: policy.replacementBudget,
    window: formatDuration(policy.replacementBudgetWindowMs),
    exhausted,
    ...(nextAt ? { nextAt } : {}),
  };
}

/** Ledger entries inside the window, oldest first. */
export function spentIn(fleet: Fleet, policy: ReplacePolicy, now: Date): string[] {
  return (fleet.group.replacementLog ?? [])
    .filter((t) => {
      const age = ageMs(t, now);
      return age !== undefined && age < policy.replacementBudgetWindowMs;
    })
    .sort();
}

// Step 3: nothing to do — a follow-up whose instance recovered, left or was re-marked

function nothingToDo(fleet: Fleet, request: Request, now: Date): string | undefined {
  // No alarm-state check here: runJob (shared/job.ts) answers an alarm that is not in ALARM with `nothingToDo`
  // before scope, observe or plan run, so every alarm request the plan sees is in ALARM.
  if (request.kind !== 'follow-up') return undefined;
  const id = request.instanceId;
  const m = fleet.members.find((x) => x.id === id);
  const of = `follow-up for ${id}${request.markedAt ? ` (marked ${request.markedAt})` : ''}`;
  if (!m) return `${of}: no longer a member of ${fleet.group.name} (terminated or detached): nothing to do`;
  if (m.replacingSince) return undefined; // its replacement is in progress: the steps below report it
  if (m.lifecycle !== 'InService') return `${of}: ${id} is ${m.lifecycle}: the group is handling it`;
  if (causesOf(m).length === 0) return `${of}: healthy again at ${now.toISOString()}: nothing to do (the next sweep removes its mark)`;
  if (m.unhealthySince === undefined) return `${of}: no longer marked (the circuit breaker cleared it): the next sweep marks it afresh`;
  if (request.markedAt && m.unhealthySince !== request.markedAt) {
    return `${of}: marked again since (${m.unhealthySince}): that mark has its own follow-up`;
  }
  return undefined;
}

// Step 4: classify every member — mark, unmark, skip, or eligible for replacement

interface Eligible {
  readonly member: Member;
  readonly causes: Cause[];
  readonly forced: boolean;
  readonly named: boolean;
}

function classifyMembers(fleet: Fleet, policy: ReplacePolicy, now: Date, scope: Reach, facts: Facts, b: Builder) {
  const { circuitOpen } = facts.assessment;
  const eligible: Eligible[] = [];
  const candidates: Assessment['candidates'][number][] = [];
  for (const m of fleet.members) {
    if (m.replacingSince) continue; // handled by continueReplacements
    if (scope.focus && m.id !== scope.focus) continue;
    const causes: Cause[] = causesOf(m);
    const isNamed = scope.named.includes(m.id);
    if (isNamed) causes.push('named');
    if (causes.length === 0) {
      if (m.unhealthySince && m.lifecycle === 'InService')
        b.actions.push(unmark(m, policy, now, `healthy again (unhealthy since ${m.unhealthySince})`));
      continue;
    }
    const age = ageMs(m.launchTime, now);
    candidates.push({ instanceId: m.id, causes, ageSeconds: age === undefined ? null : Math.floor(age / 1000) });
    if (m.lifecycle !== 'InService') {
      b.skip(m.id, 'not-in-service', `${m.id} is ${m.lifecycle}: never acted on`, { causes });
    } else if (scope.named.length > 0 && !isNamed) {
      b.skip(m.id, 'not-named', `the manual run names only ${scope.named.join(', ')}`, { causes });
    } else if (age === undefined || age < policy.gracePeriodMs) {
      const launched = age === undefined ? 'launch time unknown' : `launched ${formatDuration(age)} ago`;
      b.skip(m.id, 'grace-period', `${launched}, grace period ${formatDuration(policy.gracePeriodMs)}`, { causes });
    } else if (circuitOpen && !(isNamed && scope.force)) {
      // The confirmation restarts after the outage: stragglers of a recovery must not look long-confirmed.
      if (m.unhealthySince) b.actions.push(unmark(m, policy, now, 'circuit-open: confirmation restarts after the outage'));
      b.skip(m.id, 'circuit-open', facts.breakerText, { causes });
    } else if (isNamed || confirmed(m, causes, policy, now, b)) {
      eligible.push({ member: m, causes, forced: isNamed && scope.force && circuitOpen, named: isNamed });
    }
  }
  return { eligible, candidates };
}

/** Seen unhealthy for UNHEALTHY_CONFIRM? A first sighting is marked; a young mark waits (`confirming`). */
function confirmed(m: Member, causes: Cause[], policy: ReplacePolicy, now: Date, b: Builder): boolean {
  if (policy.unhealthyConfirmMs <= 0) return true;
  const seen = ageMs(m.unhealthySince, now);
  const confirm = formatDuration(policy.unhealthyConfirmMs);
  if (seen === undefined) {
    b.actions.push({
      type: 'mark-unhealthy',
      target: m.id,
      reason: `first seen unhealthy (${causes.join(', ')}); replace if still unhealthy after ${confirm}`,
      causes,
      markedAt: now.toISOString(),
    });
    b.guards.add('confirming');
    return false;
  }
  if (seen < policy.unhealthyConfirmMs) {
    b.skip(m.id, 'confirming', `unhealthy since ${m.unhealthySince} (${formatDuration(seen)}), replace after ${confirm}`, { causes });
    return false;
  }
  return true;
}

/** Remove the mark; a follow-up still pending for it is cancelled with it (its schedule would find nothing to do). */
function unmark(m: Member, policy: ReplacePolicy, now: Date, reason: string): ReplaceAction {
  const since = m.unhealthySince as string;
  const pending = policy.followUps && (ageMs(since, now) ?? Number.POSITIVE_INFINITY) < policy.unhealthyConfirmMs;
  return { type: 'unmark', target: m.id, reason, ...(pending ? { followUp: followUpName(m.id, since) } : {}) };
}

// Step 5: the capacity-preserving path in progress — finish it before starting anything else.
// Terminating with decrement is safe only while the raise this job made is exactly in effect (desired = the
// desired before + 1), the tagged instance is still unhealthy and a replacement serves; a tag older than
// REPLACEMENT_TIMEOUT never acts: it is reported and removed; so is a tag whose raise is gone (desired ≤ before).

function continueReplacements(fleet: Fleet, policy: ReplacePolicy, now: Date, scope: Reach, facts: Facts, b: Builder): Member[] {
  const replacing = fleet.members.filter((m) => m.replacingSince);
  let terminating: string | undefined;
  for (const x of replacing) {
    if (scope.focus && x.id !== scope.focus) continue;
    const verdict = replacementVerdict(x, fleet, policy, now, replacing, facts, terminating);
    if (verdict.kind === 'terminate') terminating = x.id;
    record(verdict, x, b);
  }
  return replacing;
}

type Verdict =
  | { kind: 'terminate' | 'undo' | 'expire'; action: ReplaceAction; stalled?: string }
  | { kind: 'skip'; guard: Guard; detail: string }
  | { kind: 'stalled'; detail: string };

function record(verdict: Verdict, x: Member, b: Builder): void {
  switch (verdict.kind) {
    case 'skip':
      return b.skip(x.id, verdict.guard, verdict.detail);
    case 'stalled':
      return b.stall(x.id, verdict.detail);
    default:
      if (verdict.stalled) b.stall(x.id, verdict.stalled);
      b.actions.push(verdict.action);
  }
}

function replacementVerdict(
  x: Member,
  fleet: Fleet,
  policy: ReplacePolicy,
  now: Date,
  replacing: readonly Member[],
  facts: Facts,
  terminating: string | undefined,
): Verdict {
  const { group, members } = fleet;
  const since = x.replacingSince as string;
  const before = x.desiredBeforeRaise;
  const waited = ageMs(since, now) ?? Number.POSITIVE_INFINITY;
  const untag =
    `remove ${REPLACING_TAG} from ${x.id} once desired capacity is what the group should run (the job then replaces ` + `${x.id} afresh)`;
  const progress = replacementProgress(x, fleet, replacing, facts);
  if (x.lifecycle !== 'InService') {
    return {
      kind: 'skip',
      guard: 'replacement-in-progress',
      detail: `${x.id} (replacing since ${since}) is ${x.lifecycle}: the group is handling it`,
    };
  }
  if (facts.assessment.suspended.includes('Terminate')) {
    return {
      kind: 'skip',
      guard: 'process-suspended',
      detail: `Terminate is suspended on ${group.name}; ${x.id} stays until it is resumed`,
    };
  }
  if (waited >= policy.replacementTimeoutMs) {
    const detail =
      `raised desired capacity at ${since} (${Number.isFinite(waited) ? `${formatDuration(waited)} ago` : 'unreadable time'}, more than ` +
      `REPLACEMENT_TIMEOUT ${formatDuration(policy.replacementTimeoutMs)}) and the replacement is not done (${progress.state}); the tag ` +
      `is removed and never acts (desired stays ${group.desired}: check the group's activities)`;
    const reason = `stalled for ${Number.isFinite(waited) ? formatDuration(waited) : 'an unknown time'}: the tag expires unacted`;
    return { kind: 'expire', stalled: detail, action: { type: 'expire-replacing', target: x.id, reason } };
  }
  if (before === undefined) {
    return {
      kind: 'stalled',
      detail:
        `${REPLACING_TAG} on ${x.id} (${since}) does not record the desired capacity before the raise: cannot verify the raise, not ` +
        `terminating with decrement (desired now ${group.desired}); ${untag}`,
    };
  }
  if (group.desired < before + 1) {
    // Expired at once, not left live: a later unrelated +1 scale-out would make desired = before + 1 and the job
    // would take it back (terminate with decrement, or undo-raise) within REPLACEMENT_TIMEOUT.
    const detail =
      `desired capacity ${group.desired} is not above ${before}, the desired before the raise at ${since}: the raise is gone ` +
      `(SetDesiredCapacity failed or a scale-in undid it), not terminating with decrement; the tag is removed (the job then ` +
      `replaces ${x.id} afresh)`;
    const reason = `the raise at ${since} is gone (desired ${group.desired}, not above ${before}): the tag expires unacted`;
    return { kind: 'expire', stalled: detail, action: { type: 'expire-replacing', target: x.id, reason } };
  }
  if (group.desired !== before + 1) {
    return {
      kind: 'stalled',
      detail:
        `desired capacity ${group.desired} is not the ${before + 1} this job set at ${since} (${before} + 1): the group was scaled since ` +
        `the raise, not terminating with decrement; ${untag}`,
    };
  }
  // An operator's replacement (manual instanceIds) goes ahead whatever the instance's health; the job's own only while it is sick.
  if (!x.replacementByOperator && causesOf(x).length === 0 && x.asgHealth === 'Healthy') {
    const reason = `${x.id} is healthy again: not terminated; the raise is undone, desired ${group.desired} → ${before}`;
    return { kind: 'undo', action: { type: 'undo-raise', target: x.id, reason, desiredFrom: group.desired, desiredTo: before } };
  }
  if (progress.ready && terminating === undefined) {
    const others = members.filter((m) => m.id !== x.id && m.lifecycle === 'InService').length;
    const reason = `replacement ${progress.fresh} serves; ${others} others InService, desired ${group.desired} → ${group.desired - 1}`;
    return { kind: 'terminate', action: { type: 'terminate-replaced', target: x.id, reason } };
  }
  if (progress.ready)
    return { kind: 'skip', guard: 'replacement-in-progress', detail: `one terminate-replaced per run: ${terminating} goes first` };
  const waiting = facts.assessment.inFlight[0] ?? progress.state;
  return { kind: 'skip', guard: 'replacement-in-progress', detail: `waiting for the replacement of ${x.id} to serve (${waiting})` };
}

/** Whether the replacement of `x` serves: a member launched at or after the tag, and the newest member, both serving. */
function replacementProgress(x: Member, fleet: Fleet, replacing: readonly Member[], facts: Facts) {
  const { group, members } = fleet;
  const since = x.replacingSince as string;
  const others = members.filter((m) => m.id !== x.id && m.lifecycle === 'InService');
  // Healthy members not being replaced must make up desired capacity once every tagged one is gone.
  const kept = others.filter((m) => !m.replacingSince && m.asgHealth === 'Healthy').length;
  const whole = kept >= group.desired - replacing.length;
  // EC2 launch times are to the second.
  const taggedAt = secondOf(since);
  const fresh = others.find(
    (m) => !m.replacingSince && servesTraffic(m) && taggedAt !== undefined && (secondOf(m.launchTime) ?? -1) >= taggedAt,
  );
  const newest = [...others].sort((a, b) => (b.launchTime ?? '').localeCompare(a.launchTime ?? '') || b.id.localeCompare(a.id))[0];
  const ready = facts.assessment.inFlight.length === 0 && whole && fresh !== undefined && newest !== undefined && servesTraffic(newest);
  const state = [
    newest ? `newest member ${newest.id}: ${newest.lifecycle}, target ${newest.target?.state ?? 'not registered'}` : 'no other member',
    ...(fresh ? [] : [`no member launched since ${since} serves`]),
    ...(whole ? [] : [`${kept} healthy members not being replaced < desired ${group.desired} - ${replacing.length} being replaced`]),
  ].join('; ');
  return { ready, fresh: fresh?.id, state };
}

// Step 6: start new replacements — the guards in order, the budget, then the per-run limit

function startReplacements(
  fleet: Fleet,
  policy: ReplacePolicy,
  now: Date,
  scope: Reach,
  facts: Facts,
  replacing: readonly Member[],
  eligible: Eligible[],
  b: Builder,
): boolean {
  const { group } = fleet;
  const { path, inFlight, suspended } = facts.assessment;
  const rank = (m: Member): number => {
    if (m.id === scope.alarmInstance || m.id === scope.focus) return 0;
    const i = scope.named.indexOf(m.id);
    return i >= 0 ? 1 + i : 1000;
  };
  eligible.sort(
    (a, c) =>
      rank(a.member) - rank(c.member) ||
      (a.member.unhealthySince ?? '').localeCompare(c.member.unhealthySince ?? '') ||
      (a.member.launchTime ?? '').localeCompare(c.member.launchTime ?? '') ||
      a.member.id.localeCompare(c.member.id),
  );
  const spent = spentIn(fleet, policy, now);
  const started: string[] = [];
  let exhausted = false;
  for (const e of eligible) {
    const { member: m, causes } = e;
    const skip = (guard: Guard, detail: string): void => b.skip(m.id, guard, detail, { causes });
    if (replacing.length > 0) {
      skip('replacement-in-progress', `one replacement at a time: ${replacing.map((r) => r.id).join(', ')} is being replaced`);
    } else if (inFlight.length > 0) {
      skip('in-flight', inFlight.join('; '));
    } else if (suspended.length > 0) {
      skip('process-suspended', `${suspended.join(', ')} suspended on ${group.name}`);
    } else if (path === 'launch-then-terminate' && group.desired + 1 > group.max) {
      const detail = `no maintenance policy that launches before terminating, and desired ${group.desired} = max ${group.max}`;
      skip('no-headroom', `${detail}: cannot add the replacement first`);
    } else if (!e.named && spent.length + started.length >= policy.replacementBudget) {
      // A fleet whose new instances keep failing (a bad image or config) would be replaced forever: stop and page.
      exhausted = true;
      skip('replacement-budget-exhausted', budgetText(spent, policy));
    } else if (started.length >= policy.maxReplacementsPerRun) {
      skip('max-replacements-per-run', `at most ${policy.maxReplacementsPerRun} per run`);
    } else if (path === 'launch-then-terminate' && started.length > 0) {
      // Each raise is to desired + 1 from the same observation: a second one would launch nothing.
      skip(
        'replacement-in-progress',
        `one replacement at a time without a launch-before-terminate policy: ${started.join(', ')} goes first`,
      );
    } else {
      started.push(m.id);
      b.actions.push(replacementOf(e, path, group.desired, now, facts.breakerText, b));
    }
  }
  return exhausted;
}

function budgetText(spent: readonly string[], policy: ReplacePolicy): string {
  const window = formatDuration(policy.replacementBudgetWindowMs);
  const next = spent[0] ? new Date(Date.parse(spent[0]) + policy.replacementBudgetWindowMs).toISOString() : 'unknown';
  return (
    `${spent.length} replacements started in the last ${window} (REPLACEMENT_BUDGET ${policy.replacementBudget} per ${window}): ` +
    `replacing nothing until ${next}; new instances keep failing? check the image and config (a manual instanceIds run still acts)`
  );
}

function replacementOf(e: Eligible, path: ReplacePath, desired: number, now: Date, breakerText: string, b: Builder): ReplaceAction {
  const { member: m, causes, forced } = e;
  const why = `${causes.join(', ')}${forced ? ` (FORCED past the open circuit breaker: ${breakerText})` : ''}`;
  if (forced) b.forced.push(m.id);
  const extra = { causes, ...(forced ? { forced: true } : {}) };
  if (path === 'set-instance-health') {
    const reason = `${why}; the maintenance policy launches the replacement before terminating`;
    return { type: 'set-instance-health', target: m.id, reason, ...extra };
  }
  return {
    type: 'raise-desired',
    target: m.id,
    reason: `${why}; no launch-before-terminate policy: add one instance now, terminate ${m.id} once the new one serves`,
    markedAt: now.toISOString(),
    desiredFrom: desired,
    desiredTo: desired + 1,
    ...extra,
  };
}

// Step 7: each mark arranges its own confirming run at markedAt + UNHEALTHY_CONFIRM (not the next schedule tick)

function scheduleFollowUps(policy: ReplacePolicy, b: Builder): void {
  if (!policy.followUps || policy.unhealthyConfirmMs <= 0) return;
  for (const mark of b.actions.filter((a) => a.type === 'mark-unhealthy')) {
    const markedAt = mark.markedAt as string;
    // Rounded up to the second: `at(...)` takes seconds, and a follow-up a moment early would only find `confirming`.
    const at = new Date(Math.ceil((Date.parse(markedAt) + policy.unhealthyConfirmMs) / 1000) * 1000).toISOString();
    b.actions.push({
      type: 'schedule-follow-up',
      target: mark.target,
      reason: `confirm ${mark.target} at ${at} (marked ${markedAt} + UNHEALTHY_CONFIRM ${formatDuration(policy.unhealthyConfirmMs)})`,
      markedAt,
      followUp: followUpName(mark.target, markedAt),
      at,
    });
  }
}
