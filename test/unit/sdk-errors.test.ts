import { describe, expect, it } from 'vitest';
import { describeEndpoint, isHtmlPage, notAnAwsApi } from '../../shared/sdk-errors.ts';

describe('sdk error mapping', () => {
  it.each([
    ['<!DOCTYPE html><html><title>404</title></html>', true],
    ['\n  <html>\n<body>Not Found</body></html>', true],
    ['<HTML lang="en">', true],
    ['<?xml version="1.0"?><ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>', false],
    ['<CreateBucketResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01"/>', false],
    ['{"__type":"ThrottlingException"}', false],
    ['', false],
  ])('%j is an HTML page: %s', (body, page) => {
    expect(isHtmlPage(body)).toBe(page);
  });

  it('names the endpoint with its port and path, and says when it is unknown', () => {
    expect(describeEndpoint({ protocol: 'http:', hostname: '127.0.0.1', port: 4566, path: '/' })).toBe('http://127.0.0.1:4566');
    expect(describeEndpoint({ protocol: 'https:', hostname: 's3.us-east-1.amazonaws.com', path: '/bucket/key' })).toBe(
      'https://s3.us-east-1.amazonaws.com/bucket/key',
    );
    expect(describeEndpoint(undefined)).toBe('an unknown endpoint');
  });

  it('keeps the status so 5xx pages are retried like any 5xx, 404 pages are not', () => {
    const e = notAnAwsApi('DescribeInstanceRefreshes', { protocol: 'http:', hostname: '127.0.0.1', port: 5000, path: '/' }, 404);
    expect(e.message).toBe('DescribeInstanceRefreshes failed at http://127.0.0.1:5000: the endpoint answered HTML (404) — not an AWS API');
    expect(e.name).toBe('NotAnAwsApiError');
    expect(e.$metadata).toEqual({ httpStatusCode: 404 });
  });
});
