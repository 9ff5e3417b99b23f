import { describe, expect, it } from 'vitest';
import {
  certificateProblem,
  nameCovers,
  normaliseSerial,
  sniSelection,
  TAG_ROLLED_BACK_AT,
  TAG_ROTATION_OF,
  type CertificateView,
  type CertState,
  type PendingStageView,
  type RotationPolicy,
  type Served,
} from '../../functions/rotate-certificates/model.ts';
// The test's local `plan` variables keep their name; the module's pure `plan` is called as planRotation here.
import { idempotencyToken, plan as planRotation } from '../../functions/rotate-certificates/plan.ts';

const now = new Date('2026-11-23T03:00:00.000Z');
const day = 86_400_000;
const at = (days: number): string => new Date(now.getTime() + days * day).toISOString();
const DOMAIN = 'registry.example.com';
const LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/reg/abc/def';
const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/reg/abc';
const arn = (id: string) => `arn:aws:acm:us-east-1:123456789012:certificate/${id}`;
const OLD = arn('old');
const NEW = arn('new');
const RECORD = { name: `_x1.${DOMAIN}.`, type: 'CNAME', value: '_y1.acm-validations.aws.' };
const NEW_RECORD = { name: `_x1.${DOMAIN}.`, type: 'CNAME', value: '_y1.acm-validations.aws.' };

function cert(over: Partial<CertificateView> & { arn: string }): CertificateView {
  return {
    status: 'ISSUED',
    type: 'AMAZON_ISSUED',
    domainName: DOMAIN,
    names: [DOMAIN],
    serial: 'aa01',
    notBefore: at(-300),
    notAfter: at(90),
    renewalEligibility: 'ELIGIBLE',
    validationRecords: [RECORD],
    inUseBy: [LB],
    tags: {},
    ...over,
  };
}

const served = (serial: string, notAfterDays: number): Served => ({
  ok: true,
  host: 'lb.example',
  port: 443,
  serial,
  notBefore: at(-300),
  notAfter: at(notAfterDays),
  names: [DOMAIN],
});

function state(over: {
  certs: CertificateView[];
  default?: string;
  sni?: string[];
  served?: Served;
  zone?: CertState['zoneRecords'];
}): CertState {
  return {
    listener: {
      arn: LISTENER,
      protocol: 'HTTPS',
      port: 443,
      loadBalancerArn: LB,
      loadBalancerDnsName: 'lb.example',
      defaultCertificateArn: over.default ?? OLD,
      sniCertificateArns: over.sni ?? [],
    },
    certificates: over.certs,
    missing: [],
    served: over.served ?? served('aa01', 90),
    zoneRecords: over.zone ?? { [RECORD.name]: [RECORD.value] },
  };
}

const FLEET = { key: 'registry-fleet', value: 'registry-prod' };
const FLEET_TAGS = { [FLEET.key]: FLEET.value };
const acm: RotationPolicy = { mode: 'acm', domainName: DOMAIN, renewBeforeMs: 30 * day, force: false, fleetTag: FLEET, hostedZone: true };
const acme: RotationPolicy = { ...acm, mode: 'acme' };
const kinds = (p: { actions: readonly { type: string }[] }) => p.actions.map((a) => a.type);
/** Refusals are verdicts, not actions (issue 17): the plan lists them apart and has no actions then. */
const refused = (p: { actions: readonly unknown[]; refusals?: readonly { type: string }[] }) => {
  expect(p.actions).toEqual([]);
  return (p.refusals ?? []).map((r) => r.type);
};

describe('planRotation (acm)', () => {
  it('healthy: nothing to do when the served certificate is valid longer than RENEW_BEFORE', () => {
    const plan = planRotation(state({ certs: [cert({ arn: OLD })] }), acm, now);
    expect(plan).toMatchObject({ actions: [], skipped: [], step: 'healthy', daysLeft: 90 });
  });

  it('the earlier of the served and the ACM expiry decides', () => {
    const plan = planRotation(state({ certs: [cert({ arn: OLD, notAfter: at(90) })], served: served('aa01', 10) }), acm, now);
    expect(kinds(plan)).toEqual(['request-certificate']);
    expect(plan.daysLeft).toBe(10);
  });

  it('force rotates a healthy certificate', () => {
    const plan = planRotation(state({ certs: [cert({ arn: OLD })] }), { ...acm, force: true }, now);
    expect(kinds(plan)).toEqual(['request-certificate']);
    expect(plan.actions[0]?.reason).toMatch(/^forced/);
  });

  it('inside the window with managed renewal pending validation: restores the records and requests a replacement', () => {
    const old = cert({ arn: OLD, notAfter: at(20), renewal: { status: 'PENDING_VALIDATION' } });
    const plan = planRotation(state({ certs: [old], served: served('aa01', 20), zone: {} }), acm, now);
    expect(plan.step).toBe('request');
    expect(plan.actions).toEqual([
      expect.objectContaining({ type: 'restore-validation-records', target: OLD, records: [RECORD] }),
      expect.objectContaining({
        type: 'request-certificate',
        target: DOMAIN,
        domainName: DOMAIN,
        subjectAlternativeNames: [DOMAIN],
        replaces: OLD,
        idempotencyToken: idempotencyToken(DOMAIN, 'aa01'),
        tags: [
          { Key: TAG_ROTATION_OF, Value: OLD },
          { Key: 'registry-fleet', Value: 'registry-prod' },
        ],
      }),
    ]);
  });

  it('inside the window with renewal failed: restores records (wrong value counts as missing) and requests', () => {
    const old = cert({ arn: OLD, notAfter: at(5), renewal: { status: 'FAILED', reason: 'DOMAIN_VALIDATION_DENIED' } });
    const plan = planRotation(state({ certs: [old], served: served('aa01', 5), zone: { [RECORD.name]: ['_stale.'] } }), acm, now);
    expect(kinds(plan)).toEqual(['restore-validation-records', 'request-certificate']);
    expect(plan.actions[0]?.reason).toContain('FAILED (DOMAIN_VALIDATION_DENIED)');
  });

  it('the replacement covers every name of the certificate it replaces, DOMAIN_NAME first, and keeps a requestable key algorithm', () => {
    const names = ['mirror.example.com', DOMAIN, '*.cache.example.com'];
    const old = cert({ arn: OLD, notAfter: at(20), names, keyAlgorithm: 'EC_prime256v1' });
    const plan = planRotation(state({ certs: [old], served: served('aa01', 20) }), acm, now);
    expect(plan.actions).toEqual([
      expect.objectContaining({
        type: 'request-certificate',
        domainName: DOMAIN,
        subjectAlternativeNames: [DOMAIN, 'mirror.example.com', '*.cache.example.com'],
        keyAlgorithm: 'EC_prime256v1',
      }),
    ]);
    expect(plan.actions[0]?.reason).toContain(`(${DOMAIN}, mirror.example.com, *.cache.example.com)`);
  });

  it('a wildcard default: the replacement names DOMAIN_NAME and the wildcard; a key algorithm ACM cannot issue is left to ACM', () => {
    const old = cert({ arn: OLD, domainName: '*.example.com', names: ['*.example.com'], notAfter: at(20), keyAlgorithm: 'RSA_4096' });
    const plan = planRotation(state({ certs: [old], served: served('aa01', 20) }), acm, now);
    expect(plan.actions).toEqual([
      expect.objectContaining({ type: 'request-certificate', domainName: DOMAIN, subjectAlternativeNames: [DOMAIN, '*.example.com'] }),
    ]);
    expect(plan.actions[0]).not.toHaveProperty('keyAlgorithm');
  });

  it('records already in place are not rewritten', () => {
    const old = cert({ arn: OLD, notAfter: at(20), renewal: { status: 'PENDING_VALIDATION' } });
    const plan = planRotation(state({ certs: [old], served: served('aa01', 20) }), acm, now);
    expect(kinds(plan)).toEqual(['request-certificate']);
  });

  it('the idempotency token is stable per domain and old serial, ≤ 32 word characters', () => {
    expect(idempotencyToken(DOMAIN, 'aa01')).toBe(idempotencyToken(DOMAIN, 'aa01'));
    expect(idempotencyToken(DOMAIN, 'aa01')).not.toBe(idempotencyToken(DOMAIN, 'aa02'));
    expect(idempotencyToken(DOMAIN, 'aa01')).toMatch(/^\w{32}$/);
  });

  describe('new certificate pending', () => {
    const old = cert({ arn: OLD, notAfter: at(20) });
    const pending = cert({
      arn: NEW,
      status: 'PENDING_VALIDATION',
      serial: 'bb02',
      notBefore: undefined,
      notAfter: undefined,
      tags: { [TAG_ROTATION_OF]: OLD },
      validationRecords: [NEW_RECORD],
      inUseBy: [],
    });

    it('creates its missing validation records', () => {
      const plan = planRotation(state({ certs: [old, pending], served: served('aa01', 20), zone: {} }), acm, now);
      expect(plan.step).toBe('validate');
      expect(plan.actions).toEqual([expect.objectContaining({ type: 'create-validation-records', target: NEW, records: [NEW_RECORD] })]);
    });

    it('waits when the records are in place (and never requests a second one)', () => {
      const plan = planRotation(state({ certs: [old, pending], served: served('aa01', 20) }), acm, now);
      expect(plan).toMatchObject({ actions: [], step: 'waiting', skipped: [expect.objectContaining({ type: 'wait', target: NEW })] });
    });

    it('continues outside the window too (a rotation in flight is finished)', () => {
      const plan = planRotation(state({ certs: [cert({ arn: OLD }), pending], zone: {} }), acm, now);
      expect(kinds(plan)).toEqual(['create-validation-records']);
    });

    it('a failed replacement is refused with a failed action', () => {
      const failed = { ...pending, status: 'VALIDATION_TIMED_OUT' };
      const plan = planRotation(state({ certs: [old, failed], served: served('aa01', 20) }), acm, now);
      expect(refused(plan)).toEqual(['refuse-certificate']);
      expect(plan.refusals).toEqual([expect.objectContaining({ type: 'refuse-certificate', target: NEW })]);
      expect(plan.refusals?.[0]?.reason).toContain('VALIDATION_TIMED_OUT');
    });
  });

  describe('new certificate issued', () => {
    const old = cert({ arn: OLD, notAfter: at(20) });
    const issued = cert({ arn: NEW, serial: 'bb02', notBefore: at(-1), notAfter: at(395), tags: { [TAG_ROTATION_OF]: OLD }, inUseBy: [] });

    it('swaps: new default, old kept for rollback, then a handshake check with rollback', () => {
      const plan = planRotation(state({ certs: [old, issued], served: served('aa01', 20) }), acm, now);
      expect(plan.step).toBe('swap');
      expect(plan.actions).toEqual([
        expect.objectContaining({ type: 'swap-listener-certificate', target: LISTENER, newCertificateArn: NEW, oldCertificateArn: OLD }),
        expect.objectContaining({
          type: 'verify-handshake',
          target: DOMAIN,
          expectSerial: 'bb02',
          rollback: { listenerArn: LISTENER, restoreCertificateArn: OLD, rolledBackCertificateArn: NEW },
        }),
      ]);
    });

    it('wrong-domain replacement is refused, nothing swapped', () => {
      const wrong = { ...issued, domainName: 'other.example.com', names: ['other.example.com'] };
      const plan = planRotation(state({ certs: [old, wrong], served: served('aa01', 20) }), acm, now);
      expect(refused(plan)).toEqual(['refuse-certificate']);
      expect(plan.refusals).toEqual([expect.objectContaining({ type: 'refuse-certificate', target: NEW })]);
      expect(plan.refusals?.[0]?.reason).toContain(`does not cover ${DOMAIN}`);
    });

    it('a replacement not yet valid is refused', () => {
      const early = { ...issued, notBefore: at(2) };
      const plan = planRotation(state({ certs: [old, early], served: served('aa01', 20) }), acm, now);
      expect(refused(plan)).toEqual(['refuse-certificate']);
      expect(plan.refusals?.[0]?.reason).toContain('not valid before');
    });

    it('a rolled-back replacement is not retried automatically, no duplicate is requested, and inside the window every run fails', () => {
      const rolled = { ...issued, tags: { ...issued.tags, [TAG_ROLLED_BACK_AT]: at(-1) } };
      const plan = planRotation(state({ certs: [old, rolled], served: served('aa01', 20) }), acm, now);
      expect(plan).toMatchObject({ step: 'rolled-back', daysLeft: 20 });
      expect(plan.actions).toEqual([]);
      expect(plan.refusals).toEqual([
        {
          type: 'rotation-blocked',
          target: NEW,
          reason:
            `expires ${at(20)} (20 days left), but the swap to ${NEW} was rolled back at ${at(-1)}: nothing rotates it automatically. ` +
            'Find why the load balancer did not serve it, then invoke with {"force": true} to retry the swap, or delete it so the next run requests another',
        },
      ]);
      expect(plan.skipped).toEqual([expect.objectContaining({ type: 'wait', target: NEW, reason: expect.stringContaining('force') })]);
    });

    it('a rolled-back replacement outside the window: nothing changes (healthy, no failed action)', () => {
      const rolled = { ...issued, tags: { ...issued.tags, [TAG_ROLLED_BACK_AT]: at(-1) } };
      const plan = planRotation(state({ certs: [{ ...old, notAfter: at(60) }, rolled], served: served('aa01', 60) }), acm, now);
      expect(plan).toMatchObject({ actions: [], step: 'healthy' });
      expect(plan.skipped).toEqual([expect.objectContaining({ type: 'wait', target: NEW })]);
    });

    it('force retries a rolled-back replacement', () => {
      const rolled = { ...issued, tags: { ...issued.tags, [TAG_ROLLED_BACK_AT]: at(-1) } };
      const plan = planRotation(state({ certs: [old, rolled], served: served('aa01', 20) }), { ...acm, force: true }, now);
      expect(kinds(plan)).toEqual(['swap-listener-certificate', 'verify-handshake']);
    });
  });

  describe('after the swap', () => {
    const old = cert({ arn: OLD, notAfter: at(20), inUseBy: [LB], tags: FLEET_TAGS });
    const current = cert({ arn: NEW, serial: 'bb02', notAfter: at(395), tags: { [TAG_ROTATION_OF]: OLD, ...FLEET_TAGS } });
    const NOT_OURS = `not created by this fleet (no registry-fleet=registry-prod tag): left in ACM; delete it by hand once nothing uses it`;

    it('swap done → cleanup: remove the old one from the listener and delete it', () => {
      const plan = planRotation(state({ certs: [current, old], default: NEW, sni: [OLD], served: served('bb02', 395) }), acm, now);
      expect(plan.step).toBe('cleanup');
      expect(plan.actions).toEqual([
        expect.objectContaining({ type: 'remove-listener-certificate', target: LISTENER, certificateArn: OLD }),
        expect.objectContaining({ type: 'delete-certificate', target: OLD }),
      ]);
      expect(plan.skipped).toEqual([]);
    });

    it.each([
      ['no tags at all (imported by the operator)', {}],
      ['the fleet key with another fleet as value', { [FLEET.key]: 'registry-staging' }],
      ['the fleet value under another key', { other: FLEET.value }],
    ])("old certificate not the fleet's (%s): taken off the listener, left in ACM, delete reported as skipped", (_, tags) => {
      const foreign = { ...old, tags };
      const plan = planRotation(state({ certs: [current, foreign], default: NEW, sni: [OLD], served: served('bb02', 395) }), acm, now);
      expect(plan.step).toBe('cleanup');
      expect(plan.actions).toEqual([
        expect.objectContaining({ type: 'remove-listener-certificate', target: LISTENER, certificateArn: OLD }),
      ]);
      expect(plan.skipped).toEqual([{ type: 'delete-certificate', target: OLD, reason: NOT_OURS }]);
    });

    it("an old certificate not the fleet's and already off the listener: left alone, healthy, no repeated report", () => {
      const foreign = { ...old, tags: {} };
      const plan = planRotation(state({ certs: [current, foreign], default: NEW, served: served('bb02', 395) }), acm, now);
      expect(plan).toMatchObject({ actions: [], skipped: [], step: 'healthy' });
    });

    it('an old certificate of the fleet already off the listener (delete refused earlier): deleted now', () => {
      const plan = planRotation(state({ certs: [current, { ...old, inUseBy: [] }], default: NEW, served: served('bb02', 395) }), acm, now);
      expect(plan.step).toBe('cleanup');
      expect(plan.actions).toEqual([expect.objectContaining({ type: 'delete-certificate', target: OLD })]);
    });

    it('keeps the old certificate while something else uses it', () => {
      const shared = { ...old, inUseBy: [LB, 'arn:aws:cloudfront::123456789012:distribution/E1'] };
      const plan = planRotation(state({ certs: [current, shared], default: NEW, sni: [OLD], served: served('bb02', 395) }), acm, now);
      expect(kinds(plan)).toEqual(['remove-listener-certificate']);
      expect(plan.skipped).toEqual([expect.objectContaining({ type: 'delete-certificate', target: OLD })]);
    });

    it('handshake mismatch → rollback to the old certificate', () => {
      const plan = planRotation(state({ certs: [current, old], default: NEW, sni: [OLD], served: served('aa01', 20) }), acm, now);
      expect(plan.step).toBe('rollback');
      expect(plan.actions).toEqual([
        expect.objectContaining({
          type: 'rollback-listener-certificate',
          target: LISTENER,
          restoreCertificateArn: OLD,
          rolledBackCertificateArn: NEW,
          servedSerial: 'aa01',
          expectedSerial: 'bb02',
        }),
      ]);
    });

    it('no cleanup and no rollback while the handshake fails', () => {
      const down: Served = { ok: false, host: 'lb.example', port: 443, error: 'ECONNREFUSED' };
      const plan = planRotation(state({ certs: [current, old], default: NEW, sni: [OLD], served: down }), acm, now);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped[0]?.reason).toContain('ECONNREFUSED');
    });

    it('once the old certificate is gone: healthy', () => {
      const plan = planRotation(state({ certs: [current], default: NEW, served: served('bb02', 395) }), acm, now);
      expect(plan).toMatchObject({ actions: [], step: 'healthy' });
    });
  });

  it('a listener default that does not cover DOMAIN_NAME is refused', () => {
    const wrong = cert({ arn: OLD, domainName: 'other.example.com', names: ['other.example.com'], notAfter: at(5) });
    const plan = planRotation(state({ certs: [wrong], served: served('aa01', 5) }), acm, now);
    expect(refused(plan)).toEqual(['refuse-certificate']);
    expect(plan.refusals).toEqual([expect.objectContaining({ type: 'refuse-certificate', target: OLD })]);
  });

  it('a default certificate ACM does not have is refused', () => {
    const plan = planRotation(state({ certs: [] }), acm, now);
    expect(refused(plan)).toEqual(['refuse-certificate']);
  });
});

describe('planRotation (acm, no HOSTED_ZONE_ID)', () => {
  const noZone: RotationPolicy = { ...acm, hostedZone: false };
  const BY_HAND = `no HOSTED_ZONE_ID: create these DNS records by hand: ${RECORD.name} CNAME ${RECORD.value}`;
  const old = cert({ arn: OLD, notAfter: at(20) });
  const pending = cert({
    arn: NEW,
    status: 'PENDING_VALIDATION',
    serial: 'bb02',
    notBefore: undefined,
    notAfter: undefined,
    tags: { [TAG_ROTATION_OF]: OLD },
    validationRecords: [NEW_RECORD],
    inUseBy: [],
  });

  it('managed renewal pending validation: restoring the records is skipped, naming them; the replacement is still requested', () => {
    const renewing = cert({ arn: OLD, notAfter: at(20), renewal: { status: 'PENDING_VALIDATION' } });
    const plan = planRotation(state({ certs: [renewing], served: served('aa01', 20), zone: {} }), noZone, now);
    expect(plan.step).toBe('request');
    expect(kinds(plan)).toEqual(['request-certificate']);
    expect(plan.skipped).toEqual([expect.objectContaining({ type: 'restore-validation-records', target: OLD, records: [RECORD] })]);
    expect(plan.skipped[0]?.reason).toContain(BY_HAND);
    // With a zone: unchanged.
    expect(kinds(planRotation(state({ certs: [renewing], served: served('aa01', 20), zone: {} }), acm, now))).toEqual([
      'restore-validation-records',
      'request-certificate',
    ]);
  });

  it('replacement pending validation: creating its records is skipped, naming them (every run until ACM validates)', () => {
    const plan = planRotation(state({ certs: [old, pending], served: served('aa01', 20), zone: {} }), noZone, now);
    expect(plan).toMatchObject({ actions: [], step: 'waiting' });
    expect(plan.skipped).toEqual([expect.objectContaining({ type: 'create-validation-records', target: NEW, records: [NEW_RECORD] })]);
    expect(plan.skipped[0]?.reason).toBe(`${BY_HAND} (replacement is pending validation)`);
    // With a zone: unchanged.
    const withZone = planRotation(state({ certs: [old, pending], served: served('aa01', 20), zone: {} }), acm, now);
    expect(withZone).toMatchObject({ step: 'validate', skipped: [] });
    expect(kinds(withZone)).toEqual(['create-validation-records']);
  });

  it('a replacement for several names: with a zone all its missing records are created, without one all are named', () => {
    const other = { name: `_x2.mirror.example.com.`, type: 'CNAME', value: '_y2.acm-validations.aws.' };
    const multi = { ...pending, names: [DOMAIN, 'mirror.example.com'], validationRecords: [NEW_RECORD, other] };
    const withZone = planRotation(state({ certs: [old, multi], served: served('aa01', 20), zone: {} }), acm, now);
    expect(withZone.actions).toEqual([
      expect.objectContaining({ type: 'create-validation-records', target: NEW, records: [NEW_RECORD, other] }),
    ]);
    const onlyOneInZone = planRotation(
      state({ certs: [old, multi], served: served('aa01', 20), zone: { [NEW_RECORD.name]: [NEW_RECORD.value] } }),
      acm,
      now,
    );
    expect(onlyOneInZone.actions).toEqual([expect.objectContaining({ type: 'create-validation-records', records: [other] })]);
    const byHand = planRotation(state({ certs: [old, multi], served: served('aa01', 20), zone: {} }), noZone, now);
    expect(byHand.skipped[0]?.reason).toBe(`${BY_HAND}, ${other.name} CNAME ${other.value} (replacement is pending validation)`);
  });

  it('several records are all named', () => {
    const other = { name: `_x2.${DOMAIN}.`, type: 'CNAME', value: '_y2.acm-validations.aws.' };
    const plan = planRotation(
      state({ certs: [old, { ...pending, validationRecords: [NEW_RECORD, other] }], served: served('aa01', 20), zone: {} }),
      noZone,
      now,
    );
    expect(plan.skipped[0]?.reason).toBe(`${BY_HAND}, ${other.name} CNAME ${other.value} (replacement is pending validation)`);
  });

  it('the rest of the flow is unchanged: request, swap once ISSUED, cleanup', () => {
    expect(kinds(planRotation(state({ certs: [old], served: served('aa01', 20), zone: {} }), noZone, now))).toEqual([
      'request-certificate',
    ]);
    const issued = { ...pending, status: 'ISSUED', notBefore: at(-1), notAfter: at(395) };
    expect(kinds(planRotation(state({ certs: [old, issued], served: served('aa01', 20), zone: {} }), noZone, now))).toEqual([
      'swap-listener-certificate',
      'verify-handshake',
    ]);
    const current = cert({ arn: NEW, serial: 'bb02', notAfter: at(395), tags: { [TAG_ROTATION_OF]: OLD, ...FLEET_TAGS } });
    const previous = cert({ arn: OLD, tags: FLEET_TAGS });
    const cleanup = planRotation(
      state({ certs: [current, previous], default: NEW, sni: [OLD], served: served('bb02', 395), zone: {} }),
      noZone,
      now,
    );
    expect(kinds(cleanup)).toEqual(['remove-listener-certificate', 'delete-certificate']);
  });
});

describe('planRotation (acme)', () => {
  const imported = cert({ arn: OLD, type: 'IMPORTED', renewalEligibility: 'INELIGIBLE', validationRecords: [], notAfter: at(25) });

  it('imported certificate expiring: ACME order, re-import into the same ARN, verify', () => {
    const plan = planRotation(state({ certs: [imported], served: served('aa01', 25) }), acme, now);
    expect(plan.step).toBe('renew');
    expect(plan.actions).toEqual([
      expect.objectContaining({ type: 'renew-acme-certificate', target: OLD, domainName: DOMAIN, keepTags: [] }),
      expect.objectContaining({ type: 'verify-handshake', expectSerial: null }),
    ]);
    expect(plan.actions[1]).not.toHaveProperty('rollback');
  });

  it('a fleet-tagged imported certificate keeps its fleet tag across the re-import', () => {
    const tagged = { ...imported, tags: { ...FLEET_TAGS, owner: 'ops' } };
    const plan = planRotation(state({ certs: [tagged], served: served('aa01', 25) }), acme, now);
    expect(plan.actions[0]).toMatchObject({
      type: 'renew-acme-certificate',
      keepTags: [{ Key: 'registry-fleet', Value: 'registry-prod' }],
    });
  });

  it('healthy imported certificate: nothing', () => {
    const plan = planRotation(state({ certs: [{ ...imported, notAfter: at(60) }], served: served('aa01', 60) }), acme, now);
    expect(plan).toMatchObject({ actions: [], step: 'healthy' });
  });

  it('an Amazon-issued certificate cannot be re-imported: refused', () => {
    const plan = planRotation(state({ certs: [{ ...imported, type: 'AMAZON_ISSUED' }], served: served('aa01', 25) }), acme, now);
    expect(refused(plan)).toEqual(['refuse-certificate']);
    expect(plan.refusals?.[0]?.reason).toContain('CERTIFICATE_MODE=acm');
  });

  it('wrong-domain imported certificate is refused', () => {
    const wrong = { ...imported, names: ['*.other.example.com'] };
    const plan = planRotation(state({ certs: [wrong], served: served('aa01', 25) }), acme, now);
    expect(refused(plan)).toEqual(['refuse-certificate']);
  });
});

describe('helpers', () => {
  it.each([
    ['registry.example.com', 'registry.example.com', true],
    ['*.example.com', 'registry.example.com', true],
    ['*.example.com', 'a.registry.example.com', false],
    ['*.example.com', 'example.com', false],
    ['other.example.com', 'registry.example.com', false],
    ['REGISTRY.example.com.', 'registry.example.com', true],
  ])('nameCovers(%s, %s) = %s', (name, domain, expected) => {
    expect(nameCovers(name, domain)).toBe(expected);
  });

  it.each([
    ['0E:8A:01', 'e8a01'],
    ['0E8A01', 'e8a01'],
    ['951169', 'e8381'], // moto answers decimal
    ['00ff', 'ff'],
  ])('normaliseSerial(%s) = %s', (input, expected) => {
    expect(normaliseSerial(input)).toBe(expected);
  });

  it('certificateProblem: domain, not yet valid, expired', () => {
    expect(certificateProblem({ names: [DOMAIN], notBefore: at(-1), notAfter: at(1) }, DOMAIN, now)).toBeUndefined();
    expect(certificateProblem({ names: ['x.example.com'] }, DOMAIN, now)).toContain('does not cover');
    expect(certificateProblem({ names: [DOMAIN], notBefore: at(1) }, DOMAIN, now)).toContain('not valid before');
    expect(certificateProblem({ names: [DOMAIN], notAfter: at(-1) }, DOMAIN, now)).toContain('expired');
  });
});

// ---- issue 13: the ACME pending stage, the order cooldown, key and names, events for other certificates, SNI ----

describe('planRotation (acme pending stage and order cooldown)', () => {
  const imported = cert({
    arn: OLD,
    type: 'IMPORTED',
    renewalEligibility: 'INELIGIBLE',
    validationRecords: [],
    notAfter: at(25),
    keyAlgorithm: 'EC_prime256v1',
  });
  const renewed = { ...imported, serial: 'cc03', notBefore: at(0), notAfter: at(90) };
  const stage = (over: Partial<PendingStageView>): PendingStageView => ({
    certificateArn: OLD,
    stage: 'issued',
    orderedAt: at(-1 / 24),
    serial: 'cc03',
    notAfter: at(90),
    ...over,
  });
  const withPending = (s: CertState, pending: PendingStageView): CertState => ({ ...s, pending });

  it('an issued certificate stored but not imported: resumes at import, then verifies it, never orders again', () => {
    const plan = planRotation(withPending(state({ certs: [imported], served: served('aa01', 25) }), stage({ stage: 'issued' })), acme, now);
    expect(plan.step).toBe('resume-import');
    expect(kinds(plan)).toEqual(['import-acme-certificate', 'verify-handshake']);
    expect(plan.actions[1]).toMatchObject({ expectSerial: 'cc03' });
  });

  it('stored and already in ACM (the run died before it noted the import): verifies, never imports or orders', () => {
    const plan = planRotation(withPending(state({ certs: [renewed], served: served('aa01', 25) }), stage({ stage: 'issued' })), acme, now);
    expect(kinds(plan)).toEqual(['verify-handshake']);
  });

  it("an order's key secret is kept while the issued certificate is not in ACM, and dropped first once ACM has it", () => {
    const key = 'registry-acme-pending-XyZ123/order-key-20261122T020000Z';
    const waiting = planRotation(
      withPending(state({ certs: [imported], served: served('aa01', 25) }), stage({ stage: 'issued', keySecretName: key })),
      acme,
      now,
    );
    expect(kinds(waiting)).toEqual(['import-acme-certificate', 'verify-handshake']);
    // The run died between the import and the delete: ACM holds the serial, the key secret must go.
    const crashed = planRotation(
      withPending(state({ certs: [renewed], served: served('cc03', 90) }), stage({ stage: 'issued', keySecretName: key })),
      acme,
      now,
    );
    expect(kinds(crashed)).toEqual(['drop-order-key', 'finish-acme-rotation']);
    expect(crashed.actions[0]).toMatchObject({ target: key, orderedAt: at(-1 / 24) });
    // An order that never issued (or died before its stage was written) leaves only the name: dropped too.
    const ordering = planRotation(
      withPending(
        state({ certs: [imported], served: served('aa01', 25) }),
        stage({ stage: 'ordering', serial: undefined, keySecretName: key }),
      ),
      acme,
      now,
    );
    expect(kinds(ordering)[0]).toBe('drop-order-key');
  });

  it('imported, the load balancer still serves the old one: verify-or-wait, never order', () => {
    const plan = planRotation(
      withPending(state({ certs: [renewed], served: served('aa01', 25) }), stage({ stage: 'imported' })),
      acme,
      now,
    );
    expect(plan.step).toBe('verify');
    expect(plan.actions).toEqual([expect.objectContaining({ type: 'verify-handshake', expectSerial: 'cc03' })]);
  });

  it('imported and served: finishes the stage', () => {
    const plan = planRotation(
      withPending(state({ certs: [renewed], served: served('cc03', 90) }), stage({ stage: 'imported' })),
      acme,
      now,
    );
    expect(plan.step).toBe('finish');
    expect(kinds(plan)).toEqual(['finish-acme-rotation']);
  });

  it("no stage at all, ACM's copy fresh, only the served one old: verify-or-wait, never order", () => {
    const plan = planRotation(state({ certs: [renewed], served: served('aa01', 25) }), acme, now);
    expect(plan.step).toBe('verify');
    expect(plan.actions).toEqual([expect.objectContaining({ type: 'verify-handshake', expectSerial: 'cc03' })]);
  });

  it('an order started inside ACME_ORDER_COOLDOWN (the run died or the order failed): no second order, the run says when', () => {
    const ordering = stage({ stage: 'ordering', orderedAt: at(-2 / 24), serial: undefined, notAfter: undefined });
    const plan = planRotation(withPending(state({ certs: [imported], served: served('aa01', 25) }), ordering), acme, now);
    expect(plan).toMatchObject({ actions: [], step: 'cooldown' });
    expect(plan.skipped).toEqual([
      expect.objectContaining({ type: 'wait', target: OLD, reason: expect.stringContaining('ACME_ORDER_COOLDOWN') }),
    ]);
    // force does not lift the cooldown: it protects the CA's rate limits.
    expect(
      kinds(planRotation(withPending(state({ certs: [imported], served: served('aa01', 25) }), ordering), { ...acme, force: true }, now)),
    ).toEqual([]);
    // Once the cooldown has passed, the next run orders again.
    const old = stage({ stage: 'ordering', orderedAt: at(-25 / 24), serial: undefined, notAfter: undefined });
    expect(kinds(planRotation(withPending(state({ certs: [imported], served: served('aa01', 25) }), old), acme, now))).toEqual([
      'renew-acme-certificate',
      'verify-handshake',
    ]);
  });

  it('a finished rotation inside the cooldown blocks a forced re-order too', () => {
    const done = stage({ stage: 'verified', orderedAt: at(-1) });
    const plan = planRotation(
      withPending(state({ certs: [renewed], served: served('cc03', 90) }), { ...done, orderedAt: at(-3 / 24) }),
      { ...acme, force: true },
      now,
    );
    expect(plan).toMatchObject({ actions: [], step: 'cooldown' });
  });

  it("a stage for another certificate is not this one's: the plan goes on, and says so", () => {
    const other = stage({ certificateArn: arn('other'), stage: 'imported' });
    const plan = planRotation(withPending(state({ certs: [imported], served: served('aa01', 25) }), other), acme, now);
    expect(kinds(plan)).toEqual(['renew-acme-certificate', 'verify-handshake']);
    expect(plan.skipped).toEqual([
      expect.objectContaining({ type: 'wait', target: arn('other'), reason: expect.stringContaining('not the listener') }),
    ]);
  });

  it('the order keeps the key algorithm and every name of the certificate it renews', () => {
    const names = [DOMAIN, 'mirror.example.com'];
    const ec = planRotation(state({ certs: [{ ...imported, names }], served: served('aa01', 25) }), acme, now);
    expect(ec.actions[0]).toMatchObject({ type: 'renew-acme-certificate', names, keyAlgorithm: 'EC_prime256v1' });
    const rsa = planRotation(
      state({
        certs: [{ ...imported, domainName: '*.example.com', names: ['*.example.com'], keyAlgorithm: 'RSA_4096' }],
        served: served('aa01', 25),
      }),
      acme,
      now,
    );
    expect(rsa.actions[0]).toMatchObject({ type: 'renew-acme-certificate', names: [DOMAIN, '*.example.com'], keyAlgorithm: 'RSA_4096' });
  });
});

describe('planRotation: an ACM expiry event for another certificate', () => {
  const old = cert({ arn: OLD, notAfter: at(20) });
  const FOREIGN = arn('foreign');

  it.each([
    ['acm', acm],
    ['acme', acme],
  ])('plans nothing and says so (%s mode)', (_, policy) => {
    const current = policy.mode === 'acme' ? { ...old, type: 'IMPORTED' } : old;
    const plan = planRotation(state({ certs: [current], served: served('aa01', 20) }), { ...policy, eventCertificateArn: FOREIGN }, now);
    expect(plan).toMatchObject({ actions: [], step: 'ignored' });
    expect(plan.skipped).toEqual([
      { type: 'ignore-event', target: FOREIGN, reason: expect.stringContaining(`not one of the listener's certificates (${OLD})`) },
    ]);
  });

  it("an event for the listener's certificate plans as usual", () => {
    expect(kinds(planRotation(state({ certs: [old], served: served('aa01', 20) }), { ...acm, eventCertificateArn: OLD }, now))).toEqual([
      'request-certificate',
    ]);
  });
});

describe("the load balancer's certificate selection (SNI) and the kept rollback certificate", () => {
  const base = { names: [DOMAIN], notAfter: at(90) };
  it.each([
    ['ECDSA beats RSA, whatever the size', { keyAlgorithm: 'EC_prime256v1' }, { keyAlgorithm: 'RSA_4096' }, 'a'],
    ['the larger RSA key wins', { keyAlgorithm: 'RSA_2048' }, { keyAlgorithm: 'RSA_4096' }, 'b'],
    ['the larger curve wins', { keyAlgorithm: 'EC_secp384r1' }, { keyAlgorithm: 'EC_prime256v1' }, 'a'],
    [
      'same key: the longer validity wins',
      { keyAlgorithm: 'RSA_2048', notAfter: at(20) },
      { keyAlgorithm: 'RSA_2048', notAfter: at(395) },
      'b',
    ],
    [
      'a certificate that does not cover the name is never chosen',
      { keyAlgorithm: 'EC_prime256v1', names: ['other.example.com'] },
      { keyAlgorithm: 'RSA_2048' },
      'b',
    ],
  ])('%s', (_, a, b, winner) => {
    const certs = [
      { arn: 'a', ...base, ...a },
      { arn: 'b', ...base, ...b },
    ];
    expect(sniSelection(certs, DOMAIN)?.arn).toBe(winner);
    expect(sniSelection([...certs].reverse(), DOMAIN)?.arn).toBe(winner);
  });

  const issued = (keyAlgorithm: string) =>
    cert({ arn: NEW, serial: 'bb02', notBefore: at(-1), notAfter: at(395), tags: { [TAG_ROTATION_OF]: OLD }, inUseBy: [], keyAlgorithm });
  it.each([
    ['ECDSA old, RSA new', 'EC_prime256v1', 'RSA_2048', false],
    ['RSA-4096 old, RSA-2048 new', 'RSA_4096', 'RSA_2048', false],
    ['same key type and size (the new one lasts longer)', 'RSA_2048', 'RSA_2048', true],
    ['RSA old, ECDSA new', 'RSA_2048', 'EC_prime256v1', true],
  ])('%s: the old certificate is kept on the listener only if it cannot win the selection', (_, oldKey, newKey, keep) => {
    const plan = planRotation(
      state({ certs: [cert({ arn: OLD, notAfter: at(20), keyAlgorithm: oldKey }), issued(newKey)], served: served('aa01', 20) }),
      acm,
      now,
    );
    expect(plan.actions[0]).toMatchObject({ type: 'swap-listener-certificate', newCertificateArn: NEW, keepForRollback: keep });
    expect(plan.actions[1]).toMatchObject({ type: 'verify-handshake', rollback: { restoreCertificateArn: OLD } });
  });

  it('another listener certificate that would outrank the replacement for DOMAIN_NAME: refused, nothing swapped', () => {
    const other = cert({ arn: arn('sni'), keyAlgorithm: 'EC_secp384r1', notAfter: at(200), serial: 'dd04' });
    const plan = planRotation(
      state({ certs: [cert({ arn: OLD, notAfter: at(20) }), other, issued('RSA_2048')], sni: [arn('sni')], served: served('aa01', 20) }),
      acm,
      now,
    );
    expect(plan.actions).toEqual([]);
    expect(plan.refusals).toEqual([
      expect.objectContaining({
        type: 'refuse-certificate',
        target: arn('sni'),
        reason: expect.stringContaining('would be served instead of'),
      }),
    ]);
  });

  it('a later run: the old certificate (not kept) is what the handshake shows → rolls back by re-swapping the default', () => {
    const current = cert({ arn: NEW, serial: 'bb02', notAfter: at(395), tags: { [TAG_ROTATION_OF]: OLD } });
    const plan = planRotation(
      state({ certs: [current, cert({ arn: OLD, notAfter: at(20) })], default: NEW, sni: [], served: served('aa01', 20) }),
      acm,
      now,
    );
    expect(plan.step).toBe('rollback');
    expect(plan.actions).toEqual([
      expect.objectContaining({ type: 'rollback-listener-certificate', restoreCertificateArn: OLD, rolledBackCertificateArn: NEW }),
    ]);
  });
});

describe("marker tags: the registry-fleet: prefix, the first release's registry: keys still read", () => {
  it('a replacement tagged by the first release (registry:rotation-of) is found and swapped in', () => {
    const legacy = cert({
      arn: NEW,
      serial: 'bb02',
      notBefore: at(-1),
      notAfter: at(395),
      tags: { 'registry:rotation-of': OLD },
      inUseBy: [],
    });
    const s = state({ certs: [cert({ arn: OLD, notAfter: at(20) }), legacy], served: served('aa01', 20) });
    expect(TAG_ROTATION_OF).toBe('registry-fleet:rotation-of');
    expect(TAG_ROLLED_BACK_AT).toBe('registry-fleet:rolled-back-at');
    expect(kinds(planRotation(s, acm, now))).toEqual(['swap-listener-certificate', 'verify-handshake']);
  });

  it('a rollback marked by the first release (registry:rolled-back-at) still blocks', () => {
    const legacy = cert({
      arn: NEW,
      serial: 'bb02',
      notBefore: at(-1),
      notAfter: at(395),
      tags: { 'registry:rotation-of': OLD, 'registry:rolled-back-at': at(-1) },
      inUseBy: [],
    });
    const plan = planRotation(state({ certs: [cert({ arn: OLD, notAfter: at(20) }), legacy], served: served('aa01', 20) }), acm, now);
    expect(plan.step).toBe('rolled-back');
  });
});
