import type { EventBridgeEvent } from 'aws-lambda';
import { UnsupportedEventError } from '../errors.ts';
import { isShaped, time, type Untrusted } from './fields.ts';
import type { Trigger } from './trigger.ts';

/** The `detail` of ACM's `ACM Certificate Approaching Expiration` event (@types/aws-lambda has no type for it). */
export interface CertificateApproachingExpirationDetail {
  DaysToExpiry: number;
  CommonName: string;
}

export type CertificateApproachingExpirationEvent = EventBridgeEvent<
  'ACM Certificate Approaching Expiration',
  CertificateApproachingExpirationDetail
>;

/** The certificate is `resources[0]`. */
export function fromCertificateApproachingExpiration(event: Untrusted<CertificateApproachingExpirationEvent>): Trigger<never> {
  const certificateArn = Array.isArray(event.resources) ? event.resources.find((r): r is string => typeof r === 'string') : undefined;
  if (!certificateArn) throw new UnsupportedEventError('ACM Certificate Approaching Expiration without resources[0]');
  const detail = isShaped<CertificateApproachingExpirationDetail>(event.detail) ? event.detail : {};
  const days = detail.DaysToExpiry;
  return {
    kind: 'certificate-expiry',
    certificateArn,
    ...(typeof days === 'number' ? { daysToExpiry: days } : {}),
    ...time(event.time),
  };
}
