import { describe, expect, it } from 'vitest';
import { job } from '../../functions/rotate-certificates/job.ts';
import type { CertState } from '../../functions/rotate-certificates/model.ts';
import { testContext } from '../support/run-context.ts';

/**
 * The CertificateDaysLeft metric feeds the "< 14 days" alarm: a run that saw no certificate of its own (an expiry
 * event for another certificate, a refused listener) must not report 0 days, or the alarm pages for nothing.
 */
const NOW = new Date('2026-11-23T03:00:00.000Z');
const state = {
  listener: {
    arn: 'arn:listener',
    protocol: 'HTTPS',
    port: 443,
    loadBalancerArn: 'arn:lb',
    loadBalancerDnsName: 'lb',
    sniCertificateArns: [],
  },
  certificates: [],
  missing: [],
  served: { ok: false, host: 'lb', port: 443, error: 'not checked' },
  zoneRecords: {},
  handshakeHost: 'lb',
} as unknown as CertState & { handshakeHost: string };

type Summarize = (typeof job)['summarize'];
const summarize = (plan: object) =>
  (job.summarize as (...args: unknown[]) => ReturnType<Summarize>)(
    state,
    { actions: [], skipped: [], ...plan },
    [],
    testContext({ now: NOW }),
  );

describe('rotate-certificates report metrics', () => {
  it('reports the days left when the plan knows them', () => {
    expect(summarize({ step: 'in-window', daysLeft: 10 }).metrics).toMatchObject({ CertificateDaysLeft: 10 });
  });

  it('reports no CertificateDaysLeft when the run saw no certificate of its own (never a false 0)', () => {
    expect(summarize({ step: 'ignored' }).metrics ?? {}).not.toHaveProperty('CertificateDaysLeft');
  });
});
