// Every client shared/aws.ts makes names the operation and the endpoint when the endpoint is not an AWS API
// (an emulator without the API answers an HTML page): no bare "NotFound: Unknown", no silent empty answer.
import { createServer, type Server } from 'node:http';
import { DescribeInstanceRefreshesCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autoScalingClient, configureClients, ec2Client, s3Client } from '../../shared/aws.ts';

let server: Server;
let endpoint = '';
let status = 404;
let body = '<!DOCTYPE html><html><title>404 Not Found</title></html>';
const saved = { ...process.env };

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  process.env.AWS_ENDPOINT_URL = endpoint; // read when the (lazy) clients are first made, below
  configureClients({ s3ForcePathStyle: true });
});

afterAll(async () => {
  process.env = saved;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('a non-AWS answer', () => {
  it('an HTML 404 names the operation and the endpoint (Auto Scaling, the call moto lacks)', async () => {
    status = 404;
    await expect(autoScalingClient().send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: 'fleet' }))).rejects.toThrow(
      `DescribeInstanceRefreshes failed at ${endpoint}: the endpoint answered HTML (404) — not an AWS API`,
    );
  });

  it('an HTML 200 is an error too, not an empty result (EC2)', async () => {
    status = 200;
    const error = await ec2Client()
      .send(new DescribeVolumesCommand({}))
      .catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('NotAnAwsApiError');
    expect((error as Error).message).toBe(`DescribeVolumes failed at ${endpoint}: the endpoint answered HTML (200) — not an AWS API`);
  });

  it('passes AWS XML labelled text/html through (moto labels its answers so) and reads it as usual', async () => {
    status = 200;
    body =
      '<DescribeInstanceRefreshesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><DescribeInstanceRefreshesResult>' +
      '<InstanceRefreshes><member><InstanceRefreshId>r-1</InstanceRefreshId><Status>InProgress</Status></member></InstanceRefreshes>' +
      '</DescribeInstanceRefreshesResult></DescribeInstanceRefreshesResponse>';
    const answer = await autoScalingClient().send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: 'fleet' }));
    expect(answer.InstanceRefreshes).toEqual([{ InstanceRefreshId: 'r-1', Status: 'InProgress' }]);
    body = '<!DOCTYPE html><html><title>404 Not Found</title></html>';
  });

  it('names the path for S3 (path-style)', async () => {
    status = 404;
    await expect(s3Client().send(new ListObjectsV2Command({ Bucket: 'history' }))).rejects.toThrow(
      `ListObjectsV2 failed at ${endpoint}/history/: the endpoint answered HTML (404) — not an AWS API`,
    );
  });
});
