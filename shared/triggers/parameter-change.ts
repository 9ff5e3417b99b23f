import type { EventBridgeEvent } from 'aws-lambda';
import { UnsupportedEventError } from '../errors.ts';
import { isShaped, str, time, type Untrusted } from './fields.ts';
import type { Trigger } from './trigger.ts';

/** The `detail` of Parameter Store's `Parameter Store Change` event (@types/aws-lambda has no type for it). */
export interface ParameterStoreChangeDetail {
  name: string;
  type: string;
  operation: string;
  description?: string;
}

export type ParameterStoreChangeEvent = EventBridgeEvent<'Parameter Store Change', ParameterStoreChangeDetail>;

export function fromParameterStoreChange(event: Untrusted<ParameterStoreChangeEvent>): Trigger<never> {
  const detail = isShaped<ParameterStoreChangeDetail>(event.detail) ? event.detail : {};
  const name = str(detail.name);
  const operation = str(detail.operation);
  if (!name || !operation) throw new UnsupportedEventError('Parameter Store Change without detail.name/detail.operation');
  return { kind: 'parameter-change', name, operation, ...time(event.time) };
}
