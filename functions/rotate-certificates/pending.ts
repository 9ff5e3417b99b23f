import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { errorName } from '../../shared/errors.ts';
import { ACME_STAGES, type PendingStage } from './model.ts';
import { readSecretJson, stringField } from './secret-json.ts';

/**
 * The pending stage of an ACME rotation, kept in Secrets Manager next to the account key (ACME_PENDING_SECRET_ARN):
 * one JSON document, `{}` when nothing was ever ordered. It holds the issued certificate between the order and the
 * import, never its private key: every stage is a new version of that secret, and old versions stay readable by
 * VersionId (or as AWSPREVIOUS). The key goes into the order's own key secret, deleted without recovery once ACM
 * holds the certificate. The job never logs either and never puts them in a report. A value it does not recognise
 * is an error (it is never overwritten): an operator abandons a stage by setting the secret to `{}`.
 */

export async function readPendingStage(
  secrets: SecretsManagerClient,
  secretArn: string,
  signal: AbortSignal,
): Promise<PendingStage | undefined> {
  const read = await readSecretJson(secrets, secretArn, signal);
  if (read.empty) return undefined;
  const stage = read.value as Partial<PendingStage> | undefined;
  const valid =
    typeof stage === 'object' &&
    stage !== null &&
    typeof stage.certificateArn === 'string' &&
    typeof stage.orderedAt === 'string' &&
    !Number.isNaN(Date.parse(stage.orderedAt)) &&
    ACME_STAGES.includes(stage.stage as PendingStage['stage']);
  if (!valid) {
    throw new Error(
      `ACME_PENDING_SECRET_ARN ${secretArn} holds no pending stage ({"certificateArn", "stage": ${ACME_STAGES.join('|')}, ` +
        `"orderedAt", ...}): set it to {} to abandon whatever it held`,
    );
  }
  return stage as PendingStage;
}

export async function writePendingStage(
  secrets: SecretsManagerClient,
  secretArn: string,
  stage: PendingStage,
  signal: AbortSignal,
): Promise<void> {
  await secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: JSON.stringify(stage) }), { abortSignal: signal });
}

/** The stage without the certificate (and a legacy stage's key): what stays once ACM holds the certificate. */
export function withoutKeyMaterial(stage: PendingStage): PendingStage {
  const { certificatePem: _c, chainPem: _ch, privateKeyPem: _k, ...rest } = stage;
  return rest;
}

/**
 * The order's key secret: `<pending secret's name>/order-key-<orderedAt>`. Derived from the pending secret's ARN
 * (its name with the random suffix), so the IAM policy scopes it as `<pending ARN>/order-key-*` with no new setting.
 */
export function orderKeySecretName(pendingSecretArn: string, orderedAt: string): string {
  const name = pendingSecretArn.split(':secret:')[1] ?? pendingSecretArn;
  return `${name}/order-key-${orderedAt.replace(/[-:]/g, '').replace(/\.\d+/, '')}`;
}

export async function createOrderKey(
  secrets: SecretsManagerClient,
  name: string,
  privateKeyPem: string,
  signal: AbortSignal,
): Promise<void> {
  await secrets.send(
    new CreateSecretCommand({
      Name: name,
      Description: 'rotate-certificates: the private key of one ACME order, until ACM has it (deleted without recovery then)',
      SecretString: JSON.stringify({ privateKeyPem }),
    }),
    { abortSignal: signal },
  );
}

/** The order's private key; undefined when the secret is gone or holds none. */
export async function readOrderKey(secrets: SecretsManagerClient, name: string, signal: AbortSignal): Promise<string | undefined> {
  const read = await readSecretJson(secrets, name, signal);
  const pem = read.empty ? undefined : stringField(read.value, 'privateKeyPem');
  return pem?.includes('PRIVATE KEY') ? pem : undefined;
}

/** Deleted at once, without the recovery window (which would keep the key readable for 7–30 days); gone = done. */
export async function deleteOrderKey(secrets: SecretsManagerClient, name: string, signal: AbortSignal): Promise<'deleted' | 'gone'> {
  try {
    await secrets.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }), { abortSignal: signal });
    return 'deleted';
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') return 'gone';
    throw error;
  }
}
