import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A CloudTrail stand-in for moto, which has no event history (`LookupEvents`). It is an HTTP proxy in front of
 * moto's EC2 that records every successful `AttachVolume` / `DetachVolume` sent through it as a CloudTrail
 * management event, and it answers `LookupEvents` (JSON 1.1, `CloudTrail_20131101.LookupEvents`) from those
 * records: by `ResourceName` or `EventName`, within StartTime/EndTime, newest first, paged by MaxResults.
 * Point the EC2 client that changes attachments at `endpoint`, and the job's CloudTrail client too
 * (`AWS_ENDPOINT_URL_CLOUDTRAIL`). Event times come from `clock`, so a test with a shifted clock records
 * events in its own timeline; like CloudTrail they have whole seconds.
 *
 * Like CloudTrail, which delivers management events 5–15 minutes late, the stand-in can delay them: with
 * `delayMs` (or `setDelay`) an event is answered by LookupEvents only once `clock()` has reached its time plus
 * the delay in force when it was recorded, so a lookup "up to now" misses the last minutes.
 */
export interface CloudTrailStandIn {
  readonly endpoint: string;
  /** Every event recorded so far, oldest first. */
  events(): readonly TrailRecord[];
  /** LookupEvents requests answered so far. */
  lookups(): number;
  /** How late events recorded from now on are delivered (0: at once). */
  setDelay(ms: number): void;
  /** Clears the events and the lookups, and the delay back to the one the stand-in started with. */
  reset(): void;
  stop(): Promise<void>;
}

export interface TrailRecord {
  readonly eventId: string;
  readonly eventName: string;
  readonly eventTime: Date;
  /** When LookupEvents starts answering with it (eventTime + the delay in force when it was recorded). */
  readonly deliveredAt: Date;
  readonly resources: readonly { readonly type: string; readonly name: string }[];
}

/** The EC2 calls recorded, and the request parameter that names each resource. */
const RECORDED: Record<string, readonly [string, string][]> = {
  AttachVolume: [
    ['AWS::EC2::Volume', 'VolumeId'],
    ['AWS::EC2::Instance', 'InstanceId'],
  ],
  DetachVolume: [
    ['AWS::EC2::Volume', 'VolumeId'],
    ['AWS::EC2::Instance', 'InstanceId'],
  ],
};

interface LookupInput {
  LookupAttributes?: { AttributeKey?: string; AttributeValue?: string }[];
  StartTime?: number;
  EndTime?: number;
  MaxResults?: number;
  NextToken?: string;
}

const readBody = (req: http.IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

export async function startCloudTrailStandIn({
  upstream,
  clock = () => new Date(),
  delayMs = 0,
}: {
  upstream: string;
  clock?: () => Date;
  delayMs?: number;
}): Promise<CloudTrailStandIn> {
  const to = new URL(upstream);
  let records: TrailRecord[] = [];
  let lookups = 0;
  let delay = delayMs;

  function lookup(input: LookupInput): Record<string, unknown> {
    lookups += 1;
    const [attr] = input.LookupAttributes ?? [];
    const start = (input.StartTime ?? 0) * 1000;
    const end = (input.EndTime ?? Number.POSITIVE_INFINITY) * 1000;
    const matches = (r: TrailRecord): boolean =>
      !attr ||
      (attr.AttributeKey === 'ResourceName' && r.resources.some((x) => x.name === attr.AttributeValue)) ||
      (attr.AttributeKey === 'EventName' && r.eventName === attr.AttributeValue);
    const delivered = clock().getTime();
    const found = records
      .filter((r) => r.deliveredAt.getTime() <= delivered)
      .filter((r) => matches(r) && r.eventTime.getTime() >= start && r.eventTime.getTime() <= end)
      .sort((a, b) => b.eventTime.getTime() - a.eventTime.getTime());
    const size = Math.min(Math.max(input.MaxResults ?? 50, 1), 50);
    const offset = Number(input.NextToken ?? 0);
    const page = found.slice(offset, offset + size);
    return {
      Events: page.map((r) => ({
        EventId: r.eventId,
        EventName: r.eventName,
        ReadOnly: 'false',
        EventTime: r.eventTime.getTime() / 1000,
        EventSource: 'ec2.amazonaws.com',
        Username: 'cloudtrail-stand-in',
        Resources: r.resources.map((x) => ({ ResourceType: x.type, ResourceName: x.name })),
        CloudTrailEvent: JSON.stringify({ eventName: r.eventName, eventTime: r.eventTime.toISOString(), eventSource: 'ec2.amazonaws.com' }),
      })),
      ...(offset + size < found.length ? { NextToken: String(offset + size) } : {}),
    };
  }

  function recordIfTracked(body: Buffer): void {
    const params = new URLSearchParams(body.toString('utf8'));
    const names = RECORDED[params.get('Action') ?? ''];
    if (!names) return;
    const at = Math.floor(clock().getTime() / 1000) * 1000;
    records.push({
      eventId: `stand-in-${records.length + 1}`,
      eventName: params.get('Action') as string,
      eventTime: new Date(at),
      deliveredAt: new Date(at + delay),
      resources: names.flatMap(([type, param]) => (params.get(param) ? [{ type, name: params.get(param) as string }] : [])),
    });
  }

  const server = http.createServer((req, res) => {
    void readBody(req).then((body) => {
      if (req.headers['x-amz-target'] === 'CloudTrail_20131101.LookupEvents') {
        const answer = JSON.stringify(lookup(JSON.parse(body.toString('utf8') || '{}') as LookupInput));
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(answer) });
        res.end(answer);
        return;
      }
      const headers = { ...req.headers, host: to.host, 'content-length': String(body.length) };
      const up = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          // CloudTrail records the call as it happened: only what EC2 accepted changes an attachment.
          if ((answer.statusCode ?? 500) < 300) recordIfTracked(body);
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(chunks));
        });
      });
      up.on('error', (error) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(String(error));
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    events: () => records,
    lookups: () => lookups,
    setDelay: (ms) => {
      delay = ms;
    },
    reset: () => {
      records = [];
      lookups = 0;
      delay = delayMs;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
