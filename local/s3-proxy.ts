import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A counting HTTP proxy in front of an S3 emulator (moto): counts every request by S3 operation (path-style
 * addressing), can answer chosen operations with an S3 error instead of forwarding them (throttling
 * tests), and can make the bucket look older than it is (`shiftTimes`). Point a client or the registry's
 * `regionendpoint` at `endpoint`.
 */

/**
 * Times the proxy moves back, so a test can make an upload written seconds ago look hours old without a fake
 * clock in the job (moto sets every time to "now"). Rewritten: ListObjects(V2) `LastModified`, ListMultipartUploads
 * `Initiated`, GetObject/HeadObject `Last-Modified`, the RFC 3339 content of a `…/startedat` object, and — only
 * with `parts` — ListParts' part `LastModified`.
 */
export interface TimeShift {
  /** How far back, in ms. */
  readonly byMs: number;
  /** Only times earlier than this move (default: every time): older uploads age, newer ones stay fresh. */
  readonly before?: Date;
  /**
   * Move the parts' times too (default false). Left alone, the parts keep their real times: exactly what a push
   * in flight looks like — an old upload whose multipart upload is still receiving parts.
   */
  readonly parts?: boolean;
}

export interface S3Proxy {
  readonly endpoint: string;
  /** Requests seen per operation since start or the last reset. */
  counts(): Record<string, number>;
  total(): number;
  reset(): void;
  /** Answer the next `times` requests of `operation` with `status` and S3 error `code`. */
  failNext(operation: string, times: number, status?: number, code?: string): void;
  /** Rewrite times in the answers from now on (`undefined`: stop rewriting). */
  shiftTimes(shift: TimeShift | undefined): void;
  stop(): Promise<void>;
}

/** Operations whose answers carry times the shift rewrites. */
const TIMED = new Set(['ListObjectsV2', 'ListObjects', 'ListMultipartUploads', 'ListParts', 'GetObject', 'HeadObject']);

function shiftIso(iso: string, shift: TimeShift, keepMillis: boolean): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t) || (shift.before !== undefined && t >= shift.before.getTime())) return iso;
  const out = new Date(t - shift.byMs).toISOString();
  return keepMillis ? out : out.replace(/\.\d+Z$/, 'Z');
}

/** The answer body of `op` with its times moved back (XML listings; the `startedat` content). */
export function shiftBody(op: string, key: string, body: string, shift: TimeShift): string {
  const tag = op === 'ListMultipartUploads' ? 'Initiated' : op === 'ListParts' && !shift.parts ? undefined : 'LastModified';
  if (op.startsWith('List')) {
    if (!tag) return body;
    return body.replace(new RegExp(`<${tag}>([^<]+)</${tag}>`, 'g'), (_m, iso: string) => `<${tag}>${shiftIso(iso, shift, true)}</${tag}>`);
  }
  if (op === 'GetObject' && key.endsWith('/startedat') && /^\d{4}-\d\d-\d\dT[^\s]+$/.test(body.trim())) {
    return shiftIso(body.trim(), shift, /\.\d+/.test(body));
  }
  return body;
}

function shiftHeaders(headers: http.IncomingHttpHeaders, shift: TimeShift): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = { ...headers };
  const last = headers['last-modified'];
  if (typeof last === 'string' && Number.isFinite(Date.parse(last))) {
    out['last-modified'] = new Date(Date.parse(shiftIso(new Date(last).toISOString(), shift, true))).toUTCString();
  }
  return out;
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
  let shift: TimeShift | undefined;

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
    const rewrite = shift !== undefined && TIMED.has(op) ? shift : undefined;
    const headers = { ...req.headers };
    if (rewrite) delete headers['accept-encoding']; // the rewrite reads plain text
    const upstream = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers, agent }, (up) => {
      if (!rewrite || (up.statusCode ?? 500) >= 300) {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        const key = decodeURIComponent(new URL(req.url ?? '/', 'http://proxy').pathname);
        const original = Buffer.concat(chunks);
        const text = op === 'GetObject' && !key.endsWith('/startedat') ? undefined : original.toString('utf8');
        const body = text === undefined ? original : Buffer.from(shiftBody(op, key, text, rewrite));
        const out = shiftHeaders(up.headers, rewrite);
        delete out['transfer-encoding'];
        for (const h of Object.keys(out)) if (h.startsWith('x-amz-checksum-')) delete out[h]; // the body may have changed
        if (req.method !== 'HEAD') out['content-length'] = body.length;
        res.writeHead(up.statusCode ?? 200, out);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
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
    shiftTimes: (next) => {
      shift = next;
    },
    stop: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
