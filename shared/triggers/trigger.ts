import type * as z from 'zod/mini';

/**
 * Every way a job can be started (ARCHITECTURE §3), normalised into one union. Handlers call `toTrigger`
 * (shared/triggers.ts) first; nothing downstream sees a raw AWS event.
 */
export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

export type Trigger<Options = Record<string, unknown>> =
  | { kind: 'schedule'; source: 'eventbridge-rule' | 'scheduler'; schedule: string; time?: string }
  | {
      kind: 'alarm';
      source: 'eventbridge' | 'alarm-action' | 'sns';
      alarmName: string;
      state: AlarmState;
      previousState?: AlarmState;
      /** Metric dimensions of the alarm (`TargetGroup`, `InstanceId`, `AutoScalingGroupName`, …). */
      dimensions: Record<string, string>;
      time?: string;
    }
  | { kind: 'parameter-change'; name: string; operation: string; time?: string }
  | { kind: 'certificate-expiry'; certificateArn: string; daysToExpiry?: number; time?: string }
  /**
   * A follow-up a job arranged for itself (an EventBridge Scheduler one-time schedule whose input is
   * `followUpInput(...)`): look at `target` again, the way `job` asked, at the time it asked for.
   */
  | { kind: 'follow-up'; source: 'scheduler'; job: string; target: string; since?: string; schedule: string; time?: string }
  /** Events that are recognised and deliberately do nothing (ASG `autoscaling:TEST_NOTIFICATION`). */
  | { kind: 'ignored'; reason: string }
  | { kind: 'manual'; dryRun: boolean; reason?: string; options: Options };

export type TriggerKind = Trigger['kind'];

/** A manual payload's job-specific keys, as a zod shape. `dryRun` and `reason` are added for every job. */
export type ManualOptionsShape = z.core.$ZodShape;
