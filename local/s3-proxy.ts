import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A counting HTTP proxy in front of an S3 emulator (moto): counts every request by S3 operation (path-style
 * addressing) and can answer chosen operations with an S3 error instead of forwarding them (throttling
 * tests). Point a client or the registry's `regionendpoint` at `endpoint`.
 */
export interface S3Proxy {
  readonly endpoint: string;
  /** Requests seen per operation since start or the last reset. */
  counts(): Record<string, number>;
  total(): number;
  reset(): void;
  /** Answer the next `times` requests of `operation` with `status` and S3 error `code`. */
  failNext(operation: string, times: number, status?: number, code?: string): void;
  stop(): Promise<void>;
}

/** The S3 operation of a path-style request. */
export function s3Operation(method: string, url: string, headers: http.IncomingHttpHeaders): string {
  const u = new URL(url, 'http://proxy');
  const q = u.searchParams;
  const parts = u.pathname.split('/').filter(Boolean);
  const onKey = parts.length > 1;
  switch (method) {
    case 'GET':
      if (onKey) return q.has('uploadId') ? 'ListParts' : 'GetObject';
      if (q.has('uploads')) return 'ListMultipartUploads';
      if (q.get('list-type') === '2') return 'ListObjectsV2';
      if (q.has('location')) return 'GetBucketLocation';
      return parts.length === 0 ? 'ListBuckets' : 'ListObjects';
    case 'HEAD':
      return onKey ? 'HeadObject' : 'HeadBucket';
    case 'PUT':
      if (!onKey) return 'CreateBucket';
      if (q.has('uploadId')) return headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
      return headers['x-amz-copy-source'] ? 'CopyObject' : 'PutObject';
    case 'POST':
      if (q.has('delete')) return 'DeleteObjects';
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      return 'PostObject';
    case 'DELETE':
      if (!onKey) return 'DeleteBucket';
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default:
      return method;
  }
}

export async function startS3Proxy(target: string): Promise<S3Proxy> {
  const to = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let counts = new Map<string, number>();
  const faults = new Map<string, { times: number; status: number; code: string }>();

  const server = http.createServer((req, res) => {
    const op = s3Operation(req.method ?? 'GET', req.url ?? '/', req.headers);
    counts.set(op, (counts.get(op) ?? 0) + 1);
    const fault = faults.get(op);
    if (fault && fault.times > 0) {
      fault.times -= 1;
      req.resume();
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>`;
      res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const upstream = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers, agent },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts: () => Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b))),
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    reset: () => {
      counts = new Map();
    },
    failNext: (operation, times, status = 503, code = 'SlowDown') => {
      faults.set(operation, { times, status, code });
    },
    stop: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
