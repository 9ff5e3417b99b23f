import { GetSecretValueCommand, PutSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { errorName } from '../../shared/errors.ts';
import { ACME_STAGES, type PendingStage } from './model.ts';

/**
 * The pending stage of an ACME rotation, kept in Secrets Manager next to the account key (ACME_PENDING_SECRET_ARN):
 * one JSON document, `{}` when nothing was ever ordered. It holds the issued certificate and its private key only
 * between the order and the import; the job never logs it and never puts it in a report. A value it does not
 * recognise is an error (it is never overwritten): an operator abandons a stage by setting the secret to `{}`.
 */

export async function readPendingStage(
  secrets: SecretsManagerClient,
  secretArn: string,
  signal: AbortSignal,
): Promise<PendingStage | undefined> {
  let value: string | undefined;
  try {
    const res = await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }), { abortSignal: signal });
    value = res?.SecretString;
  } catch (error) {
    // A secret created without a value answers ResourceNotFoundException for AWSCURRENT: nothing pending.
    if (errorName(error) !== 'ResourceNotFoundException') throw error;
  }
  const trimmed = value?.trim() ?? '';
  if (trimmed === '' || trimmed === '{}') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    parsed = undefined;
  }
  const stage = parsed as Partial<PendingStage> | undefined;
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

/** The stage without its key material: what stays once ACM holds the certificate. */
export function withoutKeyMaterial(stage: PendingStage): PendingStage {
  const { certificatePem: _c, chainPem: _ch, privateKeyPem: _k, ...rest } = stage;
  return rest;
}
