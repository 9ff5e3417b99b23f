import type { Untrusted } from './fields.ts';
import type { Trigger } from './trigger.ts';

/**
 * The test message Auto Scaling sends when a notification target is set up (@types/aws-lambda has no type for
 * it). It is recognised and deliberately does nothing, rather than failing as an unsupported event.
 */
export interface AutoScalingTestNotification {
  Event: 'autoscaling:TEST_NOTIFICATION';
  AccountId: string;
  AutoScalingGroupName: string;
  AutoScalingGroupARN: string;
  Time: string;
}

export function fromAutoScaling(event: Untrusted<AutoScalingTestNotification>): Trigger<never> | undefined {
  if (event.Event === 'autoscaling:TEST_NOTIFICATION') return { kind: 'ignored', reason: 'autoscaling:TEST_NOTIFICATION' };
  return undefined;
}
