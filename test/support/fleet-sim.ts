/**
 * A stateful model of one Auto Scaling group + its target group + EC2, in virtual time, answering the AWS SDK
 * through aws-sdk-client-mock (`.callsFake`). Used by the replace-unhealthy-instances simulation test and bench.
 *
 * What it models (simplified from AWS, on purpose):
 * - Launch: an instance is Pending for `bootMs`, then InService; its target is `initial` for `initialMs`, then
 *   `healthy` or `unhealthy` (a per-instance fault function of time, or the shared outage function).
 * - The group keeps `desired` active members (Pending or InService, not marked Unhealthy): it launches as needed.
 * - An instance marked Unhealthy (SetInstanceHealth): with a maintenance policy MinHealthyPercentage ≥ 100 it
 *   stays until its replacement has been InService for `warmupMs` (launch before terminate); without one it
 *   is terminated at once (terminate before launch).
 * - Terminating lasts `drainMs` (target `draining`), then the instance is gone.
 * - Health checks are EC2 only: the group never replaces an instance because its target is unhealthy.
 * - Scaling activities are derived: one in progress per Pending or Terminating instance.
 */
import {
  AutoScalingClient,
  CreateOrUpdateTagsCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeTagsCommand,
  DescribeInstanceRefreshesCommand,
  DescribeScalingActivitiesCommand,
  SetDesiredCapacityCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';

export type Fault = (t: number) => boolean;

export interface SimInstance {
  id: string;
  launchedAt: number;
  lifecycle: 'Pending' | 'InService' | 'Terminating';
  asgHealth: 'Healthy' | 'Unhealthy';
  inServiceAt?: number;
  terminatingAt?: number;
  tags: Map<string, string>;
  /** Target fails its health check when this returns true. */
  targetFault?: Fault;
  /** EC2 instance status check impaired when this returns true. */
  ec2Fault?: Fault;
}

export interface SimOptions {
  size: number;
  max?: number;
  maintenancePolicy?: { MinHealthyPercentage: number; MaxHealthyPercentage: number } | undefined;
  /** Virtual start time (ms since epoch). */
  start?: number;
  bootMs?: number;
  initialMs?: number;
  warmupMs?: number;
  drainMs?: number;
  /** Age of the initial instances at `start`. */
  initialAgeMs?: number;
  /**
   * The group's native ELB health check (HealthCheckType ELB): every this many ms the group marks an InService
   * member whose target is unhealthy Unhealthy and replaces it. Unset: EC2 checks only (this stack).
   */
  nativeElbCheckMs?: number;
  /** Phase of the native check's sweeps (ms after start of the first one). */
  nativeElbPhaseMs?: number;
}

export interface Sample {
  t: number;
  desired: number;
  inService: number;
  serving: number;
}

/** The job's follow-up settings as the stack sets them (the model plays EventBridge Scheduler). */
export const FOLLOW_UP_ENV = {
  FOLLOW_UP_GROUP: 'registry-replace-follow-ups',
  FOLLOW_UP_ROLE_ARN: 'arn:aws:iam::123456789012:role/registry-replace-follow-up-invoke',
  FOLLOW_UP_TARGET_ARN: 'arn:aws:lambda:us-east-1:123456789012:function:registry-replace-unhealthy-instances',
};

export const TARGET_GROUP_ARN = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/registry/6d0ecf831eec9f09';
export const ASG_NAME = 'registry';

class SdkError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export class FleetSim {
  now: number;
  desired: number;
  readonly min: number;
  readonly max: number;
  readonly maintenancePolicy: SimOptions['maintenancePolicy'];
  suspended: string[] = [];
  instances: SimInstance[] = [];
  /** Instances that left the group, with whether their target was healthy when they went. */
  readonly terminated: { id: string; at: number; wasServing: boolean }[] = [];
  /** Shared outage: every target fails while this returns true (may depend on the instance). */
  outage: (t: number, instance: SimInstance) => boolean = () => false;
  readonly writes: { t: number; command: string; input: Record<string, unknown> }[] = [];
  readonly calls: Record<string, number> = {};
  readonly samples: Sample[] = [];
  /** The group's own tags (CreateOrUpdateTags / DescribeTags). */
  readonly groupTags = new Map<string, string>();
  /** EventBridge Scheduler one-time schedules, by name: when they fire and the input they invoke the job with. */
  readonly schedules = new Map<string, { group: string; at: number; input: string; target: string }>();
  /** Schedules that fired (and deleted themselves: ActionAfterCompletion DELETE). */
  readonly fired: { name: string; at: number }[] = [];
  /** Ids DescribeInstanceStatus does not know yet (EC2's eventual consistency right after a launch). */
  readonly unknownToStatus = new Set<string>();
  /** Every time an instance was marked Unhealthy, and by whom (the job's SetInstanceHealth, or the group's ELB check). */
  readonly unhealthyMarks: { id: string; t: number; by: 'job' | 'elb' }[] = [];
  /**
   * A crash: once a write matching this succeeds, every later write fails (as if the Lambda died there), until
   * `recover()`: what a run that dies between two writes leaves behind.
   */
  crashAfter: ((command: string, input: Record<string, unknown>) => boolean) | undefined;
  private crashed = false;
  /** Called on every API call (reads too) before it is answered: lets a test change the group mid-run. */
  onCall: ((op: string) => void) | undefined;
  private seq = 0;
  private readonly nativeElbCheckMs: number | undefined;
  private nextElbSweep: number;
  private readonly bootMs: number;
  private readonly initialMs: number;
  private readonly warmupMs: number;
  private readonly drainMs: number;

  constructor(options: SimOptions) {
    this.now = options.start ?? Date.parse('2026-11-23T03:00:00.000Z');
    this.desired = options.size;
    this.min = Math.min(2, options.size);
    this.max = options.max ?? options.size * 2;
    this.maintenancePolicy = options.maintenancePolicy;
    this.bootMs = options.bootMs ?? 60_000;
    this.initialMs = options.initialMs ?? 30_000;
    this.warmupMs = options.warmupMs ?? 30_000;
    this.drainMs = options.drainMs ?? 30_000;
    this.nativeElbCheckMs = options.nativeElbCheckMs;
    this.nextElbSweep = this.now + (options.nativeElbPhaseMs ?? 0);
    const age = options.initialAgeMs ?? 86_400_000;
    for (let i = 0; i < options.size; i += 1) {
      const at = this.now - age;
      this.instances.push({
        id: this.newId(),
        launchedAt: at,
        lifecycle: 'InService',
        asgHealth: 'Healthy',
        inServiceAt: at + this.bootMs,
        tags: new Map(),
      });
    }
  }

  private newId(): string {
    this.seq += 1;
    return `i-0${this.seq.toString(16).padStart(16, '0')}`;
  }

  instance(id: string): SimInstance {
    const found = this.instances.find((i) => i.id === id);
    if (!found) throw new Error(`no instance ${id}`);
    return found;
  }

  /** Launch one instance now (Pending). */
  launch(): SimInstance {
    const inst: SimInstance = { id: this.newId(), launchedAt: this.now, lifecycle: 'Pending', asgHealth: 'Healthy', tags: new Map() };
    this.instances.push(inst);
    return inst;
  }

  targetState(i: SimInstance): string | undefined {
    if (i.lifecycle === 'Pending') return undefined;
    if (i.lifecycle === 'Terminating') return 'draining';
    if (this.now - (i.inServiceAt ?? 0) < this.initialMs) return 'initial';
    return i.targetFault?.(this.now) || this.outage(this.now, i) ? 'unhealthy' : 'healthy';
  }

  ec2Status(i: SimInstance): string {
    if (i.lifecycle === 'Pending') return 'initializing';
    return i.ec2Fault?.(this.now) ? 'impaired' : 'ok';
  }

  serving(): number {
    return this.instances.filter((i) => i.lifecycle === 'InService' && this.targetState(i) === 'healthy').length;
  }

  inService(): number {
    return this.instances.filter((i) => i.lifecycle === 'InService').length;
  }

  /** When instance `i`'s target first served (healthy), if it has: InService + the initial health checks, no fault then. */
  servingSince(i: SimInstance): number | undefined {
    if (i.inServiceAt === undefined) return undefined;
    const at = i.inServiceAt + this.initialMs;
    return at <= this.now && !i.targetFault?.(at) && !this.outage(at, i) ? at : undefined;
  }

  /** Advance virtual time by `ms`, in steps of `stepMs`, letting the group reconcile and sampling the invariants. */
  advance(ms: number, stepMs = 5_000): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + stepMs);
      this.reconcile();
      this.samples.push({ t: this.now, desired: this.desired, inService: this.inService(), serving: this.serving() });
    }
  }

  private reconcile(): void {
    for (const i of this.instances) {
      if (i.lifecycle === 'Pending' && this.now - i.launchedAt >= this.bootMs) {
        i.lifecycle = 'InService';
        i.inServiceAt = this.now;
      }
    }
    for (const i of [...this.instances]) {
      if (i.lifecycle === 'Terminating' && this.now - (i.terminatingAt ?? 0) >= this.drainMs)
        this.instances.splice(this.instances.indexOf(i), 1);
    }
    if (this.nativeElbCheckMs !== undefined && this.now >= this.nextElbSweep) {
      this.nextElbSweep += this.nativeElbCheckMs;
      for (const i of this.instances) {
        if (i.lifecycle !== 'InService' || i.asgHealth !== 'Healthy' || this.targetState(i) !== 'unhealthy') continue;
        i.asgHealth = 'Unhealthy';
        this.unhealthyMarks.push({ id: i.id, t: this.now, by: 'elb' });
      }
    }
    const launchFirst = (this.maintenancePolicy?.MinHealthyPercentage ?? 0) >= 100;
    for (const i of this.instances) {
      if (i.lifecycle !== 'InService' || i.asgHealth !== 'Unhealthy') continue;
      if (!launchFirst) {
        this.terminate(i);
        continue;
      }
      // Launch before terminate: the unhealthy one goes once enough healthy instances are warmed up.
      const warm = this.instances.filter(
        (x) => x.lifecycle === 'InService' && x.asgHealth === 'Healthy' && this.now - (x.inServiceAt ?? 0) >= this.warmupMs,
      ).length;
      if (warm >= this.desired) this.terminate(i);
    }
    const active = this.instances.filter(
      (i) => (i.lifecycle === 'Pending' || i.lifecycle === 'InService') && i.asgHealth === 'Healthy',
    ).length;
    if (!this.suspended.includes('Launch')) for (let n = active; n < this.desired; n += 1) this.launch();
  }

  private terminate(i: SimInstance): void {
    this.terminated.push({ id: i.id, at: this.now, wasServing: this.targetState(i) === 'healthy' });
    i.lifecycle = 'Terminating';
    i.terminatingAt = this.now;
  }

  private count(op: string): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    this.onCall?.(op);
  }

  /** The next run starts afresh after a `crashAfter` crash. */
  recover(): void {
    this.crashed = false;
    this.crashAfter = undefined;
  }

  totalCalls(): number {
    return Object.values(this.calls).reduce((s, n) => s + n, 0);
  }

  resetCalls(): void {
    for (const k of Object.keys(this.calls)) delete this.calls[k];
  }

  /**
   * The schedules due now, removed as Scheduler's ActionAfterCompletion DELETE does, each with the event it
   * delivers (its input with the context attributes filled in), oldest first.
   */
  takeDueSchedules(delayMs = 0): { name: string; event: unknown }[] {
    const due = [...this.schedules].filter(([, s]) => s.at + delayMs <= this.now).sort(([, a], [, b]) => a.at - b.at);
    return due.map(([name, s]) => {
      this.schedules.delete(name);
      this.fired.push({ name, at: this.now });
      const arn = `arn:aws:scheduler:us-east-1:123456789012:schedule/${s.group}/${name}`;
      const input = s.input
        .replace('<aws.scheduler.schedule-arn>', arn)
        .replace('<aws.scheduler.scheduled-time>', new Date(s.at).toISOString());
      return { name, event: JSON.parse(input) as unknown };
    });
  }

  writesOf(command: string): { t: number; command: string; input: Record<string, unknown> }[] {
    return this.writes.filter((w) => w.command === command);
  }

  private write(command: string, input: object): void {
    this.count(command);
    if (this.crashed) throw new SdkError('RequestAbortedError', `${command}: the run crashed before this call`);
    const record = { ...input } as Record<string, unknown>;
    this.writes.push({ t: this.now, command, input: record });
    if (this.crashAfter?.(command, record)) this.crashed = true;
  }

  /** Wire the three SDK clients to this model. Returns the mocks (call `.restore()` when done). */
  mock() {
    const asg = mockClient(AutoScalingClient);
    const elb = mockClient(ElasticLoadBalancingV2Client);
    const ec2 = mockClient(EC2Client);

    asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => {
      this.count('DescribeAutoScalingGroups');
      if (!input.AutoScalingGroupNames?.includes(ASG_NAME)) return { AutoScalingGroups: [] };
      return {
        AutoScalingGroups: [
          {
            AutoScalingGroupName: ASG_NAME,
            MinSize: this.min,
            MaxSize: this.max,
            DesiredCapacity: this.desired,
            HealthCheckType: 'EC2',
            Tags: [...this.groupTags].map(([Key, Value]) => ({
              Key,
              Value,
              ResourceId: ASG_NAME,
              ResourceType: 'auto-scaling-group',
              PropagateAtLaunch: false,
            })),
            SuspendedProcesses: this.suspended.map((ProcessName) => ({ ProcessName, SuspensionReason: 'test' })),
            ...(this.maintenancePolicy ? { InstanceMaintenancePolicy: this.maintenancePolicy } : {}),
            Instances: this.instances.map((i) => ({
              InstanceId: i.id,
              LifecycleState: i.lifecycle,
              HealthStatus: i.asgHealth,
              AvailabilityZone: 'us-east-1a',
            })),
          },
        ],
      };
    });
    asg.on(DescribeScalingActivitiesCommand).callsFake(() => {
      this.count('DescribeScalingActivities');
      const activities = this.instances
        .filter((i) => i.lifecycle !== 'InService')
        .map((i) => ({
          ActivityId: `act-${i.id}`,
          StatusCode: 'InProgress',
          Description: `${i.lifecycle === 'Pending' ? 'Launching a new' : 'Terminating'} EC2 instance: ${i.id}`,
        }));
      return {
        Activities: [...activities, { ActivityId: 'act-old', StatusCode: 'Successful', Description: 'Launching a new EC2 instance' }],
      };
    });
    asg.on(DescribeInstanceRefreshesCommand).callsFake(() => {
      this.count('DescribeInstanceRefreshes');
      return { InstanceRefreshes: [{ InstanceRefreshId: 'old', Status: 'Successful' }] };
    });
    asg.on(SetInstanceHealthCommand).callsFake((input: { InstanceId: string; HealthStatus: string }) => {
      this.write('SetInstanceHealth', input);
      const i = this.instances.find((x) => x.id === input.InstanceId);
      if (!i) throw new SdkError('ValidationError', `Instance Id not found - No instance(s) found with id ${input.InstanceId}`);
      i.asgHealth = input.HealthStatus as 'Healthy' | 'Unhealthy';
      if (i.asgHealth === 'Unhealthy') this.unhealthyMarks.push({ id: i.id, t: this.now, by: 'job' });
      this.reconcile();
      return {};
    });
    asg.on(SetDesiredCapacityCommand).callsFake((input: { DesiredCapacity: number }) => {
      this.write('SetDesiredCapacity', input);
      if (input.DesiredCapacity > this.max || input.DesiredCapacity < this.min) {
        throw new SdkError('ValidationError', `New SetDesiredCapacity value ${input.DesiredCapacity} is outside ${this.min}..${this.max}`);
      }
      this.desired = input.DesiredCapacity;
      this.reconcile();
      return {};
    });
    asg
      .on(TerminateInstanceInAutoScalingGroupCommand)
      .callsFake((input: { InstanceId: string; ShouldDecrementDesiredCapacity: boolean }) => {
        this.write('TerminateInstanceInAutoScalingGroup', input);
        const i = this.instances.find((x) => x.id === input.InstanceId && x.lifecycle !== 'Terminating');
        if (!i) throw new SdkError('ValidationError', `Instance Id not found - No instance(s) found with id ${input.InstanceId}`);
        if (input.ShouldDecrementDesiredCapacity) this.desired -= 1;
        this.terminate(i);
        this.reconcile();
        return { Activity: { ActivityId: `act-term-${i.id}`, StatusCode: 'InProgress' } };
      });

    elb.on(DescribeTargetHealthCommand).callsFake((input: { TargetGroupArn: string }) => {
      this.count('DescribeTargetHealth');
      if (input.TargetGroupArn !== TARGET_GROUP_ARN)
        throw new SdkError('TargetGroupNotFoundException', 'One or more target groups not found');
      return {
        TargetHealthDescriptions: this.instances.flatMap((i) => {
          const state = this.targetState(i);
          if (!state) return [];
          const reason =
            state === 'unhealthy'
              ? { Reason: 'Target.ResponseCodeMismatch', Description: 'Health checks failed with these codes: [503]' }
              : {};
          return [{ Target: { Id: i.id, Port: 5000 }, TargetHealth: { State: state, ...reason } }];
        }),
      };
    });

    ec2.on(DescribeInstancesCommand).callsFake((input: { Filters?: { Name: string; Values: string[] }[] }) => {
      this.count('DescribeInstances');
      const ids = new Set(input.Filters?.find((f) => f.Name === 'instance-id')?.Values ?? []);
      const found = this.instances.filter((i) => ids.has(i.id));
      return {
        Reservations: found.map((i) => ({
          Instances: [
            {
              InstanceId: i.id,
              LaunchTime: new Date(i.launchedAt),
              State: { Name: i.lifecycle === 'Terminating' ? 'shutting-down' : 'running' },
              Tags: [...i.tags].map(([Key, Value]) => ({ Key, Value })),
            },
          ],
        })),
      };
    });
    ec2.on(DescribeInstanceStatusCommand).callsFake((input: { InstanceIds?: string[] }) => {
      this.count('DescribeInstanceStatus');
      if ((input.InstanceIds?.length ?? 0) > 100) throw new SdkError('InvalidParameterValue', 'at most 100 instance ids');
      const unknown = (input.InstanceIds ?? []).filter((id) => this.unknownToStatus.has(id));
      if (unknown.length > 0) throw new SdkError('InvalidInstanceID.NotFound', `The instance ID '${unknown.join(', ')}' does not exist`);
      const ids = new Set(input.InstanceIds ?? []);
      return {
        InstanceStatuses: this.instances
          .filter((i) => ids.has(i.id))
          .map((i) => ({
            InstanceId: i.id,
            InstanceStatus: { Status: this.ec2Status(i) },
            SystemStatus: { Status: i.lifecycle === 'Pending' ? 'initializing' : 'ok' },
          })),
      };
    });
    ec2.on(CreateTagsCommand).callsFake((input: { Resources: string[]; Tags: { Key: string; Value: string }[] }) => {
      this.write('CreateTags', input);
      for (const id of input.Resources) for (const t of input.Tags) this.instance(id).tags.set(t.Key, t.Value);
      return {};
    });
    ec2.on(DeleteTagsCommand).callsFake((input: { Resources: string[]; Tags: { Key: string }[] }) => {
      this.write('DeleteTags', input);
      for (const id of input.Resources) for (const t of input.Tags) this.instances.find((i) => i.id === id)?.tags.delete(t.Key);
      return {};
    });
    asg.on(DescribeTagsCommand).callsFake((input: { Filters?: { Name: string; Values: string[] }[] }) => {
      this.count('DescribeTags');
      const keys = input.Filters?.find((f) => f.Name === 'key')?.Values;
      const tags = [...this.groupTags].filter(([k]) => !keys || keys.includes(k));
      return {
        Tags: tags.map(([Key, Value]) => ({
          Key,
          Value,
          ResourceId: ASG_NAME,
          ResourceType: 'auto-scaling-group',
          PropagateAtLaunch: false,
        })),
      };
    });
    asg.on(CreateOrUpdateTagsCommand).callsFake((input: { Tags: { Key: string; Value: string; ResourceId: string }[] }) => {
      this.write('CreateOrUpdateTags', input);
      for (const t of input.Tags) if (t.ResourceId === ASG_NAME) this.groupTags.set(t.Key, t.Value);
      return {};
    });

    const scheduler = mockClient(SchedulerClient);
    scheduler
      .on(CreateScheduleCommand)
      .callsFake((input: { Name: string; GroupName: string; ScheduleExpression: string; Target: { Arn: string; Input: string } }) => {
        this.write('CreateSchedule', input);
        if (this.schedules.has(input.Name)) throw new SdkError('ConflictException', `Schedule ${input.Name} already exists.`);
        const at = /^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$/.exec(input.ScheduleExpression)?.[1];
        if (!at) throw new SdkError('ValidationException', `Invalid Schedule Expression ${input.ScheduleExpression}.`);
        this.schedules.set(input.Name, {
          group: input.GroupName,
          at: Date.parse(`${at}Z`),
          input: input.Target.Input,
          target: input.Target.Arn,
        });
        return { ScheduleArn: `arn:aws:scheduler:us-east-1:123456789012:schedule/${input.GroupName}/${input.Name}` };
      });
    scheduler.on(DeleteScheduleCommand).callsFake((input: { Name: string }) => {
      this.write('DeleteSchedule', input);
      if (!this.schedules.delete(input.Name)) throw new SdkError('ResourceNotFoundException', `Schedule ${input.Name} does not exist.`);
      return {};
    });
    const all = [asg, elb, ec2, scheduler];
    return { asg, elb, ec2, scheduler, restore: () => all.forEach((m) => m.restore()) };
  }
}

/**
 * The target group's UnHealthyHostCount alarm as CloudWatch evaluates it: one datapoint per minute (Maximum:
 * breaching when any target was unhealthy during that minute), evaluated `lagMs` after each minute ends (the
 * metric's publication delay); ALARM when the last `datapoints` minutes all breach. Its Lambda action fires on
 * the transition into ALARM only.
 */
export class UnhealthyHostsAlarm {
  state: 'OK' | 'ALARM' = 'OK';
  readonly fired: number[] = [];
  private readonly breached = new Set<number>();
  private evaluatedUpTo: number;

  constructor(
    private readonly sim: FleetSim,
    readonly datapoints = 2,
    readonly lagMs = 30_000,
  ) {
    this.evaluatedUpTo = Math.floor(sim.now / 60_000);
  }

  /** Call once per simulation step: records the datapoint, returns true when the alarm action fires now. */
  step(): boolean {
    const minute = Math.floor(this.sim.now / 60_000);
    if (this.sim.instances.some((i) => i.lifecycle === 'InService' && this.sim.targetState(i) === 'unhealthy')) this.breached.add(minute);
    let fire = false;
    // Evaluate every minute that ended at least lagMs ago.
    while ((this.evaluatedUpTo + 1) * 60_000 + this.lagMs <= this.sim.now) {
      const last = this.evaluatedUpTo; // the minute that just completed
      this.evaluatedUpTo += 1;
      const all = Array.from({ length: this.datapoints }, (_, k) => last - k).every((m) => this.breached.has(m));
      if (all && this.state === 'OK') {
        this.state = 'ALARM';
        this.fired.push(this.sim.now);
        fire = true;
      } else if (!all) this.state = 'OK';
    }
    return fire;
  }
}
