import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import type { Route53Client } from '@aws-sdk/client-route-53';
import { PutSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as acme from 'acme-client';
import { logger } from '../../shared/observability.ts';
import type { AcmeSettings } from './config.ts';
import { keySpecOf, normaliseName } from './model.ts';
import { challengeRecords, waitInSync } from './route53.ts';
import { readSecretJson, stringField } from './secret-json.ts';

/**
 * An ACME order for one domain with DNS-01 through Route 53. The ACME account key lives in Secrets Manager
 * (ACME_ACCOUNT_SECRET_ARN) as JSON `{"accountKeyPem": "-----BEGIN ... PRIVATE KEY-----..."}`. When the secret
 * has no value yet, or its value is empty or `{}`, a new key is generated and stored with PutSecretValue (first
 * use). Any other value that holds no key is an error: this job never overwrites what it does not recognise.
 * No key ever reaches a log line: acme-client's own log goes to `debug` and carries no key material.
 */

export interface IssuedCertificate {
  readonly certificatePem: string;
  readonly chainPem: string;
  readonly privateKeyPem: string;
}

export interface AcmeDeps {
  readonly route53: Route53Client;
  readonly secrets: SecretsManagerClient;
}

export interface AcmeOrder {
  readonly domainName: string;
  /** Every name the certificate must carry (DOMAIN_NAME first): those of the certificate it renews. */
  readonly names: readonly string[];
  /** ACM's name of the renewed certificate's key algorithm (RSA_4096, EC_prime256v1 …): the new key is the same kind. */
  readonly keyAlgorithm: string;
  readonly hostedZoneId: string;
  readonly settings: AcmeSettings;
  readonly dnsChangeTimeoutMs: number;
  readonly signal: AbortSignal;
  /** The run's time budget: waiting for a DNS change stops when it runs low. */
  readonly hasTime: () => boolean;
}

const CHALLENGE_TTL = 60;
const COMMENT = 'rotate-certificates ACME DNS-01';

acme.setLogger((message) => logger.debug('acme', { message }));

/** The account key from the secret; generated and stored on first use. */
export async function loadAccountKey(secrets: SecretsManagerClient, secretArn: string, signal: AbortSignal): Promise<string> {
  const read = await readSecretJson(secrets, secretArn, signal);
  if (!read.empty) {
    const pem = stringField(read.value, 'accountKeyPem');
    if (pem?.includes('PRIVATE KEY')) return pem;
    throw new Error(`ACME account secret ${secretArn} holds no {"accountKeyPem": ...}: set it to {} to let the job create an account key`);
  }
  const key = (await acme.crypto.createPrivateKey(2048)).toString();
  await secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: JSON.stringify({ accountKeyPem: key }) }), {
    abortSignal: signal,
  });
  logger.info('acme account key created', { secretArn });
  return key;
}

/**
 * A new key of the same algorithm and size as the certificate it renews, and a CSR for every name: ACM refuses a
 * re-import that changes the key type or size, and dropping a name would break the clients that use it.
 */
export async function createCertificateRequest(names: readonly string[], keyAlgorithm: string): Promise<{ keyPem: string; csr: Buffer }> {
  const spec = keySpecOf(keyAlgorithm);
  if (!spec) throw new Error(`cannot make a key like ${keyAlgorithm} (expected RSA_<bits> or EC_prime256v1 / EC_secp384r1 / EC_secp521r1)`);
  const key =
    spec.type === 'rsa' ? await acme.crypto.createPrivateRsaKey(spec.bits) : await acme.crypto.createPrivateEcdsaKey(spec.curve as 'P-256');
  const [commonName, ...rest] = names;
  const [, csr] = await acme.crypto.createCsr(
    { ...(commonName ? { commonName } : {}), altNames: [...(commonName ? [commonName] : []), ...rest] },
    key,
  );
  return { keyPem: key.toString(), csr };
}

let trustedBundle: string | undefined;
function trust(caBundlePath: string | undefined): void {
  if (!caBundlePath || trustedBundle === caBundlePath) return;
  // acme-client talks through its own axios instance; give it an agent that trusts the extra CA (Pebble).
  acme.axios.defaults.httpsAgent = new Agent({ ca: readFileSync(caBundlePath, 'utf8') });
  trustedBundle = caBundlePath;
}

/** Runs the order and returns the certificate, its chain and its (new) private key. */
export async function issueWithAcme(order: AcmeOrder, deps: AcmeDeps): Promise<IssuedCertificate> {
  const { settings, signal } = order;
  trust(settings.caBundlePath);
  const accountKey = await loadAccountKey(deps.secrets, settings.accountSecretArn, signal);
  const client = new acme.Client({
    directoryUrl: settings.directoryUrl,
    accountKey,
    backoffAttempts: 8,
    backoffMin: 1_000,
    backoffMax: 10_000,
  });
  const { keyPem, csr } = await createCertificateRequest(order.names.length > 0 ? order.names : [order.domainName], order.keyAlgorithm);
  const records = challengeRecords(deps.route53, order.hostedZoneId, CHALLENGE_TTL, COMMENT);
  const fullChain = await client.auto({
    csr,
    email: settings.email,
    termsOfServiceAgreed: true,
    challengePriority: ['dns-01'],
    // The record is INSYNC on Route 53's authoritative servers before the CA is told; a local resolver
    // check would only see caches.
    skipChallengeVerification: true,
    challengeCreateFn: async (authz, challenge, keyAuthorization) => {
      if (challenge.type !== 'dns-01') throw new Error(`ACME server offered ${challenge.type}, this job only does dns-01`);
      const name = normaliseName(`_acme-challenge.${authz.identifier.value}`);
      const changeId = await records.add(name, keyAuthorization, signal);
      await waitInSync(deps.route53, changeId, { timeoutMs: order.dnsChangeTimeoutMs, hasTime: order.hasTime, signal });
      logger.info('acme challenge record in sync', { name });
    },
    challengeRemoveFn: async (authz, _challenge, keyAuthorization) => {
      await records.remove(normaliseName(`_acme-challenge.${authz.identifier.value}`), keyAuthorization, signal);
    },
  });
  const [certificatePem, ...chain] = acme.crypto.splitPemChain(fullChain);
  if (!certificatePem) throw new Error('ACME server returned no certificate');
  return { certificatePem, chainPem: chain.join('\n'), privateKeyPem: keyPem };
}
