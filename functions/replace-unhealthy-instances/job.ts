import * as z from 'zod/mini';
import { autoScalingClient, ec2Client, elbv2Client, schedulerClient } from '../../shared/aws.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { JobDefinition, Outcomes, Summary } from '../../shared/job.ts';
import type { JobName } from '../../shared/job-names.ts';
import type { Trigger } from '../../shared/triggers.ts';
import { apply } from './apply.ts';
import type { ReplaceUnhealthyInstancesConfig } from './config.ts';
import { INSTANCE_ID, type Fleet, type FleetState, type ReplaceAction, type ReplacementPlan, type Request } from './model.ts';
import { observe } from './observe.ts';
import { checkManualRequest, plan } from './plan.ts';

/** Manual payload keys (besides `dryRun` and `reason`). */
export const options = {
  instanceIds: z.optional(
    z
      .array(
        z
          .string({ error: 'expected an instance id like i-0123456789abcdef0' })
          .check(z.regex(INSTANCE_ID, { error: 'expected an instance id: i- and 8 or 17 hex digits (i-0123456789abcdef0)' })),
        { error: 'expected a list of instance ids like ["i-0123456789abcdef0"]' },
      )
      .check(
        z.minLength(1, { error: 'expected at least one instance id' }),
        z.maxLength(20, { error: 'expected at most 20 instance ids' }),
      ),
  ),
  force: z.optional(z.boolean({ error: 'expected true or false (only together with instanceIds)' })),
};

type Options = z.output<z.ZodMiniObject<typeof options>>;

/** The trigger as the plan needs it. */
export function toRequest(trigger: Trigger<Options>): Request {
  switch (trigger.kind) {
    case 'alarm':
      return {
        kind: 'alarm',
        state: trigger.state,
        ...(trigger.dimensions.InstanceId ? { instanceId: trigger.dimensions.InstanceId } : {}),
        ...(trigger.dimensions.TargetGroup ? { targetGroup: trigger.dimensions.TargetGroup } : {}),
      };
    case 'manual':
      return {
        kind: 'manual',
        ...(trigger.options.instanceIds ? { instanceIds: trigger.options.instanceIds } : {}),
        ...(trigger.options.force !== undefined ? { force: trigger.options.force } : {}),
      };
    case 'follow-up':
      return followUpRequest(trigger);
    default:
      return { kind: 'schedule' };
  }
}

/** A follow-up for this job and a well-formed instance id; anything else is bad input, named. */
function followUpRequest(trigger: Extract<Trigger, { kind: 'follow-up' }>): Request {
  if (trigger.job !== job.name) {
    throw new ValidationError(`invalid follow-up: detail.job: expected ${job.name}, got ${JSON.stringify(trigger.job)}`);
  }
  if (!INSTANCE_ID.test(trigger.target)) {
    throw new ValidationError(
      `invalid follow-up: detail.target: expected an instance id like i-0123456789abcdef0, got ${JSON.stringify(trigger.target)}`,
    );
  }
  if (trigger.since !== undefined && Number.isNaN(Date.parse(trigger.since))) {
    throw new ValidationError(
      `invalid follow-up: detail.since: expected an ISO time like 2026-11-23T03:00:00.000Z, got ${JSON.stringify(trigger.since)}`,
    );
  }
  return { kind: 'follow-up', instanceId: trigger.target, ...(trigger.since ? { markedAt: trigger.since } : {}) };
}

const tally = (values: readonly string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
};

export function summarizeReplacements(fleet: Fleet, plan: ReplacementPlan, outcomes: Outcomes): Summary {
  const { assessment: a } = plan;
  const applied = (type: ReplaceAction['type']): number =>
    plan.actions.filter((x, i) => x.type === type && outcomes[i]?.status === 'applied').length;
  const apiTotal = Object.values(fleet.apiCalls).reduce((s, n) => s + n, 0);
  return {
    observed: {
      group: fleet.group.name,
      min: fleet.group.min,
      desired: fleet.group.desired,
      max: fleet.group.max,
      members: fleet.members.length,
      inService: a.inService,
      healthy: a.healthy,
      unhealthy: a.unhealthy,
      byCause: a.byCause,
      lifecycle: tally(fleet.members.map((m) => m.lifecycle)),
      targets: tally(fleet.members.map((m) => m.target?.state ?? 'not-registered')),
      foreignTargets: fleet.foreignTargets,
      apiCalls: { total: apiTotal, ...fleet.apiCalls },
    },
    details: {
      ...(a.nothingToDo ? { nothingToDo: a.nothingToDo } : {}),
      path: a.path,
      maintenancePolicy: a.maintenancePolicy,
      unhealthyPercent: a.unhealthyPercent,
      maxUnhealthyPercent: a.maxUnhealthyPercent,
      circuitOpen: a.circuitOpen,
      guards: a.guards,
      inFlight: a.inFlight,
      suspended: a.suspended,
      candidates: a.candidates,
      forced: a.forced,
      stalled: a.stalled,
      budget: a.budget,
      ...(a.alarm ? { alarm: a.alarm } : {}),
      ...(a.followUp ? { followUp: a.followUp } : {}),
    },
    metrics: {
      CircuitOpen: a.circuitOpen ? 1 : 0,
      UnhealthyInstances: a.unhealthy,
      ReplacementsStarted: applied('set-instance-health') + applied('raise-desired'),
      ReplacementsCompleted: applied('terminate-replaced'),
      ReplacementStalled: a.stalled.length > 0 ? 1 : 0,
      ForcedReplacements: a.forced.length,
      // Pages (an alarm on this exact name): the budget stopped a replacement this run.
      ReplacementBudgetExhausted: a.budget.exhausted ? 1 : 0,
    },
  };
}

const clients = () => ({ autoScaling: autoScalingClient(), elbv2: elbv2Client(), ec2: ec2Client(), scheduler: schedulerClient() });

type Types = {
  config: ReplaceUnhealthyInstancesConfig;
  options: typeof options;
  scope: Request;
  state: FleetState;
  action: ReplaceAction;
  plan: ReplacementPlan;
  clients: ReturnType<typeof clients>;
};

export const job: JobDefinition<Types> = {
  name: 'replace-unhealthy-instances' satisfies JobName,
  accepts: ['alarm', 'schedule', 'manual', 'follow-up'],
  options,
  clients,
  scope: (trigger) => {
    const request = toRequest(trigger);
    checkManualRequest(request); // bad input throws before any call
    return request;
  },
  observe,
  plan: (state, { config, now }) => plan(state, config.policy, now),
  apply,
  summarize: summarizeReplacements,
};
