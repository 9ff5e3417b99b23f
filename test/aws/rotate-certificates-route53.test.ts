import { createPublicKey } from 'node:crypto';
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type Change,
} from '@aws-sdk/client-route-53';
import * as acme from 'acme-client';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createCertificateRequest } from '../../functions/rotate-certificates/acme.ts';
import { challengeRecords, upsertRecords, waitInSync } from '../../functions/rotate-certificates/route53.ts';

const route53 = mockClient(Route53Client);
const signal = new AbortController().signal;
const client = () => new Route53Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });

beforeEach(() => route53.reset());

describe('Route 53: one UPSERT helper, INSYNC through the SDK waiter under the time budget', () => {
  it('upserts every record in one change batch', async () => {
    route53.on(ChangeResourceRecordSetsCommand).resolves({ ChangeInfo: { Id: '/change/C1', Status: 'PENDING', SubmittedAt: new Date() } });
    const records = [
      { name: '_a.example.com.', type: 'CNAME', value: '_b.acm-validations.aws.' },
      { name: '_acme-challenge.example.com.', type: 'TXT', value: '"k"' },
    ];
    expect(await upsertRecords(client(), { zoneId: 'Z1', records, ttl: 60, comment: 'c' }, signal)).toBe('/change/C1');
    expect(route53).toHaveReceivedCommandWith(ChangeResourceRecordSetsCommand, {
      HostedZoneId: 'Z1',
      ChangeBatch: {
        Comment: 'c',
        Changes: records.map((r) => ({
          Action: 'UPSERT' as const,
          ResourceRecordSet: { Name: r.name, Type: r.type as 'TXT', TTL: 60, ResourceRecords: [{ Value: r.value }] },
        })),
      },
    });
    expect(await upsertRecords(client(), { zoneId: 'Z1', records: [], ttl: 60, comment: 'c' }, signal)).toBeUndefined();
    expect(route53).toHaveReceivedCommandTimes(ChangeResourceRecordSetsCommand, 1);
  });

  it('waits for INSYNC with GetChange', async () => {
    route53
      .on(GetChangeCommand)
      .resolvesOnce({ ChangeInfo: { Id: 'C1', Status: 'PENDING', SubmittedAt: new Date() } })
      .resolves({ ChangeInfo: { Id: 'C1', Status: 'INSYNC', SubmittedAt: new Date() } });
    await waitInSync(client(), 'C1', { timeoutMs: 10_000, hasTime: () => true, signal });
    expect(route53).toHaveReceivedCommandTimes(GetChangeCommand, 2);
  }, 10_000);

  it("stops when the run's time budget runs low, long before DNS_CHANGE_TIMEOUT", async () => {
    route53.on(GetChangeCommand).resolves({ ChangeInfo: { Id: 'C1', Status: 'PENDING', SubmittedAt: new Date() } });
    let budget = true;
    setTimeout(() => (budget = false), 1_500);
    const started = Date.now();
    await expect(waitInSync(client(), 'C1', { timeoutMs: 600_000, hasTime: () => budget, signal })).rejects.toThrow(
      'not INSYNC before the Lambda time budget ran low',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 10_000);

  it('gives up after the timeout', async () => {
    route53.on(GetChangeCommand).resolves({ ChangeInfo: { Id: 'C1', Status: 'PENDING', SubmittedAt: new Date() } });
    await expect(waitInSync(client(), 'C1', { timeoutMs: 2_000, hasTime: () => true, signal })).rejects.toThrow(
      'Route 53 change C1 not INSYNC after 2000 ms',
    );
  }, 10_000);
});

describe('the ACME CSR follows the certificate it renews', () => {
  it.each([
    ['EC_prime256v1', { asymmetricKeyType: 'ec', namedCurve: 'prime256v1' }],
    ['EC_secp384r1', { asymmetricKeyType: 'ec', namedCurve: 'secp384r1' }],
    ['RSA_2048', { asymmetricKeyType: 'rsa', modulusLength: 2048 }],
    ['RSA_4096', { asymmetricKeyType: 'rsa', modulusLength: 4096 }],
  ])(
    '%s: same key type and size, every name',
    async (keyAlgorithm, expected) => {
      const names = ['registry.example.com', 'mirror.example.com', '*.cache.example.com'];
      const { keyPem, csr } = await createCertificateRequest(names, keyAlgorithm);
      const key = createPublicKey(keyPem);
      const { asymmetricKeyType, ...details } = expected;
      expect(key.asymmetricKeyType).toBe(asymmetricKeyType);
      expect(key.asymmetricKeyDetails).toMatchObject(details);
      const domains = acme.crypto.readCsrDomains(csr);
      expect(domains.commonName).toBe('registry.example.com');
      expect(domains.altNames).toEqual(names);
    },
    60_000,
  );

  it('an algorithm it cannot make is an error naming it', async () => {
    await expect(createCertificateRequest(['registry.example.com'], 'ED25519')).rejects.toThrow('cannot make a key like ED25519');
  });
});

/** A hosted zone's TXT record sets as Route 53 keeps them, with its UPSERT/DELETE rules (a DELETE must match exactly). */
function txtZone() {
  const sets = new Map<string, { values: string[]; ttl: number }>();
  route53.on(ListResourceRecordSetsCommand).callsFake(async (input: { StartRecordName: string }) => {
    await new Promise((resolve) => setTimeout(resolve, 5)); // reads and writes of concurrent challenges interleave
    const set = sets.get(input.StartRecordName);
    const rr = set
      ? [{ Name: input.StartRecordName, Type: 'TXT', TTL: set.ttl, ResourceRecords: set.values.map((Value) => ({ Value })) }]
      : [];
    return { ResourceRecordSets: rr };
  });
  route53.on(ChangeResourceRecordSetsCommand).callsFake(async (input: { ChangeBatch: { Changes: Change[] } }) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (const c of input.ChangeBatch.Changes) {
      const name = c.ResourceRecordSet?.Name as string;
      const values = (c.ResourceRecordSet?.ResourceRecords ?? []).map((r) => r.Value as string);
      if (c.Action === 'DELETE') {
        const had = sets.get(name);
        if (!had || had.values.join() !== values.join()) throw Object.assign(new Error('not found'), { name: 'InvalidChangeBatch' });
        sets.delete(name);
      } else sets.set(name, { values, ttl: c.ResourceRecordSet?.TTL ?? 0 });
    }
    return { ChangeInfo: { Id: '/change/C', Status: 'PENDING', SubmittedAt: new Date() } };
  });
  return sets;
}

describe('DNS-01 challenge values: D and *.D share _acme-challenge.D', () => {
  const NAME = '_acme-challenge.registry.example.com.';

  it('two concurrent challenges publish the union; each cleanup removes only its own value, the last one the record', async () => {
    const zone = txtZone();
    const records = challengeRecords(client(), 'Z1', 60, 'c');
    await Promise.all([records.add(NAME, 'value-d', signal), records.add(NAME, 'value-wildcard', signal)]);
    expect(zone.get(NAME)).toEqual({ values: ['"value-d"', '"value-wildcard"'], ttl: 60 });
    await records.remove(NAME, 'value-d', signal);
    expect(zone.get(NAME)?.values).toEqual(['"value-wildcard"']);
    await records.remove(NAME, 'value-wildcard', signal);
    expect(zone.has(NAME)).toBe(false);
  });

  it("keeps values it did not write (another client's challenge) and never deletes them", async () => {
    const zone = txtZone();
    zone.set(NAME, { values: ['"someone-else"'], ttl: 300 });
    const records = challengeRecords(client(), 'Z1', 60, 'c');
    await records.add(NAME, 'mine', signal);
    expect(zone.get(NAME)?.values).toEqual(['"someone-else"', '"mine"']);
    await records.remove(NAME, 'mine', signal);
    await records.remove(NAME, 'mine', signal); // a second cleanup of the same value changes nothing
    expect(zone.get(NAME)?.values).toEqual(['"someone-else"']);
  });
});
