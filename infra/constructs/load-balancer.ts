import { Duration } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import { Construct } from 'constructs';
import { REGISTRY_PORT } from '../user-data.ts';

/** Long enough for one large layer PATCH on a slow link (the ALB drops idle connections after this). */
export const ALB_IDLE_TIMEOUT_SECONDS = 900;

export interface RegistryLoadBalancerProps {
  vpc: ec2.IVpc;
  fleet: autoscaling.AutoScalingGroup;
  domainName: string;
  /** When given, an alias record for domainName and DNS validation of a new certificate. */
  hostedZone?: { id: string; name: string };
  /** An existing certificate; else one is requested from ACM (DNS validation). */
  certificateArn?: string;
  /** Who may reach the registry (default: anyone). */
  ingressCidrs: readonly string[];
  /** ALB access logs into this bucket (prefix `alb/`); unset: none. */
  accessLogsBucket?: s3.IBucket;
  /** Tag on a certificate this construct requests, so rotate-certificates may later delete it. */
  fleetTag: { key: string; value: string };
  /**
   * How long a deregistering target keeps its requests in flight (the drain timeout; default the idle timeout):
   * the load balancer ends the wait early once the target has none. At most 3600 s.
   */
  deregistrationDelaySeconds?: number;
}

/** The public HTTPS entry: ALB (TLS 1.2+, HTTP→HTTPS), target group on the registry port, optional alias. */
export class RegistryLoadBalancer extends Construct {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly httpsListener: elbv2.ApplicationListener;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly certificate: acm.ICertificate;
  readonly url: string;

  constructor(scope: Construct, id: string, props: RegistryLoadBalancerProps) {
    super(scope, id);
    if (props.ingressCidrs.length === 0) throw new Error('RegistryLoadBalancer: ingressCidrs must not be empty');
    const deregistrationDelay = props.deregistrationDelaySeconds ?? ALB_IDLE_TIMEOUT_SECONDS;
    if (!(Number.isInteger(deregistrationDelay) && deregistrationDelay >= 0 && deregistrationDelay <= 3_600)) {
      throw new Error(`RegistryLoadBalancer: deregistrationDelaySeconds must be a whole number from 0 to 3600, got ${deregistrationDelay}`);
    }

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'registry load balancer: HTTPS (and HTTP, redirected) from the allowed networks',
      allowAllOutbound: false,
    });
    for (const cidr of props.ingressCidrs) {
      securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), 'HTTPS');
      securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(80), 'HTTP, redirected to HTTPS');
    }

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup,
      idleTimeout: Duration.seconds(ALB_IDLE_TIMEOUT_SECONDS),
      dropInvalidHeaderFields: true,
    });

    if (props.accessLogsBucket) this.loadBalancer.logAccessLogs(props.accessLogsBucket, 'alb');

    const zone = props.hostedZone
      ? route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', { hostedZoneId: props.hostedZone.id, zoneName: props.hostedZone.name })
      : undefined;
    this.certificate = props.certificateArn
      ? acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn)
      : new acm.Certificate(this, 'Certificate', {
          domainName: props.domainName,
          validation: acm.CertificateValidation.fromDns(zone),
        });
    // The stack's own certificate deliberately does NOT carry the fleet tag: the template references it, so
    // rotate-certificates (which deletes only fleet-tagged certificates) must never delete it.

    this.httpsListener = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [this.certificate],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: false,
    });
    this.loadBalancer.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: false,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: 'HTTPS', port: '443', permanent: true }),
    });

    // addTargets also lets the load balancer's group reach the fleet's group on the registry port (only that).
    this.targetGroup = this.httpsListener.addTargets('Registry', {
      port: REGISTRY_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [props.fleet],
      deregistrationDelay: Duration.seconds(deregistrationDelay),
      healthCheck: {
        // GET / is 200 without credentials unless the registry's own (storage) health checks fail.
        path: '/',
        port: String(REGISTRY_PORT),
        protocol: elbv2.Protocol.HTTP,
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    });

    if (zone) {
      new route53.ARecord(this, 'Alias', {
        zone,
        recordName: `${props.domainName}.`,
        target: route53.RecordTarget.fromAlias(new route53Targets.LoadBalancerTarget(this.loadBalancer)),
      });
    }
    this.url = `https://${props.domainName}`;
  }
}
