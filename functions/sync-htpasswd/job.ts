import * as z from 'zod/mini';
import { autoScalingClient, ec2Client, s3Client, ssmClient } from '../../shared/aws.ts';
import type { JobContext, JobDefinition, Outcome, Outcomes, Plan } from '../../shared/job.ts';
import type { JobName } from '../../shared/job-names.ts';
import type { Trigger } from '../../shared/triggers.ts';
import { apply } from './apply.ts';
import type { SyncHtpasswdConfig } from './config.ts';
import type { HeldOutcome, InstallHeld, JoinedInstances, SyncAction, SyncScope, SyncState } from './model.ts';
import { observe } from './observe.ts';
import { costWarnings, plan } from './plan.ts';

/**
 * sync-htpasswd: registry users from SSM Parameter Store (one parameter per user under
 * HTPASSWD_PARAMETER_PATH) → the rendered htpasswd in S3 → every InService instance, through the SSM
 * document that runs infra/assets/install-htpasswd.sh. No restart: the registry re-reads the file when its
 * mtime changes. Triggers: Parameter Store Change under the path, the hourly drift check, manual.
 */
const options = {
  forceDistribute: z.optional(z.boolean({ error: 'expected true or false' })),
};

const clients = () => ({ s3: s3Client(), ssm: ssmClient(), autoScaling: autoScalingClient(), ec2: ec2Client() });

type Types = {
  config: SyncHtpasswdConfig;
  options: typeof options;
  scope: SyncScope;
  state: SyncState;
  action: SyncAction;
  plan: Plan<SyncAction>;
  clients: ReturnType<typeof clients>;
};

/** The run's scope: a parameter change outside the user path is out of scope; a manual run may force distribution. */
export function scopeOf(
  trigger: Trigger<{ forceDistribute?: boolean | undefined }>,
  config: Pick<SyncHtpasswdConfig, 'parameterPath' | 'policy'>,
): SyncScope {
  if (trigger.kind === 'parameter-change' && !trigger.name.startsWith(config.parameterPath))
    return { outOfScope: trigger.name, forced: false, policy: config.policy };
  const forced = trigger.kind === 'manual' && trigger.options.forceDistribute === true;
  return { forced, policy: forced ? { ...config.policy, forceDistribute: true } : config.policy };
}

export const job: JobDefinition<Types> = {
  name: 'sync-htpasswd' satisfies JobName,
  accepts: ['parameter-change', 'schedule', 'manual'],
  options,
  clients,
  scope: scopeOf,
  observe,
  plan: (state, ctx) => plan(state, ctx.scope.policy, ctx.now),
  // A batch apply: the installs go out as one SendCommand per 50 instances, after the publish they depend on.
  apply,
  summarize,
};

function summarize(state: SyncState, planned: Plan<SyncAction>, outcomes: Outcomes, ctx: Pick<JobContext<Types>, 'dryRun'>) {
  if (state.kind === 'out-of-scope') {
    return { observed: {}, details: { nothingToDo: `parameter ${state.parameter} is not under the user path` } };
  }
  const users = state.resolution.users;
  const instances = {
    inSync: [] as string[],
    changed: [] as string[],
    failed: [] as string[],
    notRegistered: [] as string[],
    notRun: [] as string[],
    drifted: [] as string[],
  };
  const { dryRun } = ctx;
  planned.actions.forEach((action, i) => {
    const outcome = outcomes[i];
    if (action.type === 'install-joined-instances') {
      const joined = outcome && outcome.status !== 'skipped' ? (outcome.detail?.joined as JoinedInstances | undefined) : undefined;
      for (const [key, ids] of Object.entries(joined ?? {})) instances[key as keyof JoinedInstances].push(...ids);
      return;
    }
    if (action.type !== 'install-htpasswd') return;
    if (dryRun) instances.drifted.push(action.target);
    else if (!outcome) instances.notRun.push(action.target);
    else if (outcome.status === 'failed') instances.failed.push(action.target);
    else if (outcome.status === 'skipped')
      (heldOf(outcome) === 'not-registered' ? instances.notRegistered : instances.notRun).push(action.target);
    else (outcome.detail?.changed === false ? instances.inSync : instances.changed).push(action.target);
  });
  for (const s of planned.skipped) {
    if (s.type === 'install-htpasswd') (s.held === 'in-sync' ? instances.inSync : instances.notRegistered).push(s.target);
  }
  const publish = planned.actions.find((a) => a.type === 'publish-htpasswd');
  const warnings = costWarnings(users);
  return {
    observed: {
      parameters: state.parameters,
      users: users.length,
      publishedSha256: state.published?.sha256 ?? null,
      instancesInService: state.instances.length,
      instancesNotInService: state.instancesNotInService,
      driftChecked: state.driftChecked,
    },
    details: {
      sha256: publish?.sha256 ?? state.published?.sha256 ?? null,
      publish: publish ? 'changed' : 'unchanged',
      users: users.map((u) => ({ user: u.user, parameter: u.parameter, cost: u.cost, source: u.source })),
      ...(warnings.length > 0 ? { warnings } : {}),
      instances: Object.fromEntries(
        Object.entries(instances).filter(([k, v]) => v.length > 0 || ['inSync', 'changed', 'failed'].includes(k)),
      ),
    },
    metrics: {
      Users: users.length,
      InstancesChanged: instances.changed.length,
      InstancesFailed: instances.failed.length,
      InstancesNotRegistered: instances.notRegistered.length,
      InstancesDrifted: instances.drifted.length,
    },
  };
}

/** Why apply skipped an install (not registered yet), from the outcome's `held` field; undefined for any other skip. */
function heldOf(outcome: Outcome | HeldOutcome): InstallHeld | undefined {
  return 'held' in outcome ? outcome.held : undefined;
}
