import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { errorName } from '../../shared/errors.ts';

/**
 * The one reader of the job's JSON secrets (the ACME account key, the pending stage, an order's key). `empty` when
 * the secret has no value, an empty one or `{}` (infra creates them so); otherwise what JSON.parse made of it,
 * `undefined` when it is not JSON. Callers decide what a value they do not recognise means (never overwritten).
 */
export type SecretJson = { readonly empty: true } | { readonly empty: false; readonly value: unknown };

export async function readSecretJson(secrets: SecretsManagerClient, secretId: string, signal: AbortSignal): Promise<SecretJson> {
  let text: string | undefined;
  try {
    const res = await secrets.send(new GetSecretValueCommand({ SecretId: secretId }), { abortSignal: signal });
    text = res?.SecretString;
  } catch (error) {
    // A secret created without a value answers ResourceNotFoundException for AWSCURRENT.
    if (errorName(error) !== 'ResourceNotFoundException') throw error;
  }
  const trimmed = text?.trim() ?? '';
  if (trimmed === '' || trimmed === '{}') return { empty: true };
  try {
    return { empty: false, value: JSON.parse(trimmed) as unknown };
  } catch {
    return { empty: false, value: undefined };
  }
}

/** A string field of a parsed secret value, if it is an object that has one. */
export function stringField(value: unknown, field: string): string | undefined {
  const v = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[field] : undefined;
  return typeof v === 'string' ? v : undefined;
}
