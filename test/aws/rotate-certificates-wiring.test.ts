import { ACMClient, DescribeCertificateCommand, ListCertificatesCommand, ListTagsForCertificateCommand } from '@aws-sdk/client-acm';
import {
  DescribeListenerCertificatesCommand,
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { loadEvent } from '../support/events.ts';

const LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/reg/50dc6c495c0c9188/f2f7dc8efc522ab2';
const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/reg/50dc6c495c0c9188';
const CERT = 'arn:aws:acm:us-east-1:123456789012:certificate/11111111-1111-1111-1111-111111111111';

vi.hoisted(() => {
  Object.assign(process.env, {
    LISTENER_ARN: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/reg/50dc6c495c0c9188/f2f7dc8efc522ab2',
    DOMAIN_NAME: 'registry.example.com',
    HOSTED_ZONE_ID: 'Z0123456789ABCDEFGHIJ',
    FLEET_TAG_VALUE: 'registry-prod',
    HANDSHAKE_HOST: '127.0.0.1',
    HANDSHAKE_PORT: '9', // nothing listens: the handshake fails, the report says so
    HANDSHAKE_TIMEOUT: '1s',
  });
});

const { run } = await import('../../functions/rotate-certificates/handler.ts');
const elbv2 = mockClient(ElasticLoadBalancingV2Client);
const acm = mockClient(ACMClient);

beforeEach(() => {
  elbv2.reset();
  acm.reset();
});

describe('rotate-certificates handler (wiring)', () => {
  it('runs from the environment; a failed handshake is reported and the ACM expiry still decides', async () => {
    elbv2.on(DescribeListenersCommand).resolves({
      Listeners: [{ ListenerArn: LISTENER, LoadBalancerArn: LB, Protocol: 'HTTPS', Port: 443, Certificates: [{ CertificateArn: CERT }] }],
    });
    elbv2.on(DescribeListenerCertificatesCommand).resolves({ Certificates: [{ CertificateArn: CERT, IsDefault: true }] });
    elbv2.on(DescribeLoadBalancersCommand).resolves({ LoadBalancers: [{ DNSName: 'reg.elb.amazonaws.com' }] });
    acm.on(ListCertificatesCommand).resolves({ CertificateSummaryList: [] });
    acm.on(DescribeCertificateCommand).resolves({
      Certificate: {
        CertificateArn: CERT,
        DomainName: 'registry.example.com',
        Status: 'ISSUED',
        Type: 'IMPORTED',
        Serial: '0a:01',
        NotAfter: new Date(Date.now() + 200 * 86_400_000),
      },
    });
    acm.on(ListTagsForCertificateCommand).resolves({ Tags: [] });

    const report = await run({ ...(loadEvent('certificate-expiring.json') as Record<string, unknown>), resources: [CERT] });
    expect(report.job).toBe('rotate-certificates');
    expect(report.trigger.kind).toBe('certificate-expiry');
    expect(report.observed).toMatchObject({ served: { ok: false, host: '127.0.0.1', port: 9, error: expect.any(String) } });
    expect(report.details).toMatchObject({ step: 'healthy', servedMatchesListenerDefault: false });
    expect(elbv2).not.toHaveReceivedCommand(ModifyListenerCommand);
  });

  it('rejects triggers it does not act on', async () => {
    await expect(run(loadEvent('alarm-state-change.json'))).rejects.toThrow('rotate-certificates does not act on alarm triggers');
  });
});
