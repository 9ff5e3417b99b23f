import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { ListHostedZonesCommand, ListResourceRecordSetsCommand, type Route53Client } from '@aws-sdk/client-route-53';
import { freePort } from './ports.ts';

/**
 * A tiny authoritative DNS server on loopback that answers from moto's Route 53, so that Pebble (`-dnsserver`)
 * validates DNS-01 for real against what the job wrote. UDP and TCP on one port (a resolver retries over TCP when
 * a UDP answer is truncated). It answers TXT (and any other type) with the record set of that name and type in the
 * zone that holds the name; a name with no record set at all is NXDOMAIN, a name with other types only is an
 * empty NOERROR. One question per query, class IN; anything else is FORMERR / NOTIMP.
 */
export interface LoopbackDns {
  /** `127.0.0.1:PORT`, for `pebble -dnsserver`. */
  readonly address: string;
  readonly port: number;
  /** Every question asked, `NAME TYPE` (lower case, trailing dot), for tests. */
  readonly queries: readonly string[];
  stop(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 15: 'MX', 16: 'TXT', 28: 'AAAA', 257: 'CAA' };
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4 } as const;
const UDP_LIMIT = 512;
const TTL_FALLBACK = 60;

interface Question {
  readonly id: number;
  readonly rd: boolean;
  readonly name: string;
  readonly type: number;
  readonly klass: number;
  /** The question section as received, echoed in the answer. */
  readonly raw: Buffer;
}

/** The header and first question of a query; undefined when it is not one. */
function parseQuery(msg: Buffer): Question | 'formerr' | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  if (msg.readUInt16BE(4) !== 1) return 'formerr';
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const len = msg[at];
    if (len === undefined || len > 63) return 'formerr';
    at += 1;
    if (len === 0) break;
    labels.push(msg.subarray(at, at + len).toString('latin1'));
    at += len;
  }
  if (at + 4 > msg.length) return 'formerr';
  const type = msg.readUInt16BE(at);
  const klass = msg.readUInt16BE(at + 2);
  return { id, rd: (flags & 0x0100) !== 0, name: `${labels.join('.').toLowerCase()}.`, type, klass, raw: msg.subarray(12, at + 4) };
}

function header(id: number, rd: boolean, rcode: number, qd: number, an: number, truncated = false): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  // QR, AA, RD as asked, TC when truncated, RA off (not a recursive resolver).
  h.writeUInt16BE(0x8000 | 0x0400 | (truncated ? 0x0200 : 0) | (rd ? 0x0100 : 0) | rcode, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  return h;
}

/** Route 53 keeps a TXT value as one or more quoted strings (`"a" "b"`); DNS wants length-prefixed strings. */
export function txtStrings(value: string): string[] {
  const strings: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"/g;
  for (const m of value.matchAll(re)) strings.push((m[1] ?? '').replace(/\\(.)/g, '$1'));
  return strings.length > 0 ? strings : [value];
}

function rdata(type: string, value: string): Buffer | undefined {
  if (type === 'TXT') {
    const parts = txtStrings(value).flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8');
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length || i === 0; i += 255) chunks.push(bytes.subarray(i, i + 255));
      return chunks;
    });
    return Buffer.concat(parts.flatMap((p) => [Buffer.from([p.length]), p]));
  }
  if (type === 'A') {
    const octets = value.split('.').map(Number);
    return octets.length === 4 && octets.every((o) => o >= 0 && o <= 255) ? Buffer.from(octets) : undefined;
  }
  // Other types are not needed by the tests that use this server: the name exists, the answer is empty.
  return undefined;
}

function answer(q: Question, rcode: number, records: readonly Buffer[], ttl: number): Buffer {
  const rrs = records.map((data) => {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(q.type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(data.length, 10);
    return Buffer.concat([rr, data]);
  });
  return Buffer.concat([header(q.id, q.rd, rcode, 1, rrs.length), q.raw, ...rrs]);
}

type Lookup = (name: string, type: string) => Promise<{ exists: boolean; values: string[]; ttl: number }>;

/** The record sets of the zone whose name is the longest suffix of `name`, read fresh for every question. */
function route53Lookup(route53: Route53Client): Lookup {
  return async (name, type) => {
    const zones = (await route53.send(new ListHostedZonesCommand({}))).HostedZones ?? [];
    const zone = zones
      .filter((z) => z.Name && (name === z.Name.toLowerCase() || name.endsWith(`.${z.Name.toLowerCase()}`)))
      .sort((a, b) => (b.Name?.length ?? 0) - (a.Name?.length ?? 0))[0];
    if (!zone?.Id) return { exists: false, values: [], ttl: TTL_FALLBACK };
    const sets = [];
    let start: { StartRecordName?: string; StartRecordType?: 'TXT' } = {};
    for (;;) {
      const page = await route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zone.Id, ...start }));
      sets.push(...(page.ResourceRecordSets ?? []));
      if (!page.IsTruncated || !page.NextRecordName) break;
      start = { StartRecordName: page.NextRecordName, StartRecordType: page.NextRecordType as 'TXT' };
    }
    const atName = sets.filter((s) => `${(s.Name ?? '').toLowerCase().replace(/\.$/, '')}.` === name);
    const set = atName.find((s) => s.Type === type);
    return {
      exists: atName.length > 0,
      values: (set?.ResourceRecords ?? []).map((r) => r.Value ?? ''),
      ttl: set?.TTL ?? TTL_FALLBACK,
    };
  };
}

async function respond(msg: Buffer, lookup: Lookup, queries: string[]): Promise<Buffer | undefined> {
  const q = parseQuery(msg);
  if (q === undefined) return undefined;
  if (q === 'formerr') return header(msg.readUInt16BE(0), false, RCODE.FORMERR, 0, 0);
  const type = TYPES[q.type] ?? `TYPE${q.type}`;
  queries.push(`${q.name} ${type}`);
  if (q.klass !== 1) return answer(q, RCODE.NOTIMP, [], 0);
  try {
    const found = await lookup(q.name, type);
    if (!found.exists) return answer(q, RCODE.NXDOMAIN, [], 0);
    const records = found.values.map((v) => rdata(type, v)).filter((b): b is Buffer => b !== undefined);
    return answer(q, RCODE.NOERROR, records, found.ttl);
  } catch {
    return answer(q, RCODE.SERVFAIL, [], 0);
  }
}

/** Starts the server on a free loopback port (UDP and TCP), answering from `route53`. */
export async function startLoopbackDns(route53: Route53Client): Promise<LoopbackDns> {
  const lookup = route53Lookup(route53);
  const queries: string[] = [];
  const port = await freePort();
  const udp: Socket = createSocket('udp4');
  udp.on('message', (msg, peer) => {
    void respond(msg, lookup, queries).then((reply) => {
      if (!reply) return;
      // Too long for UDP: the header alone with TC set tells the resolver to ask again over TCP.
      const out = reply.length > UDP_LIMIT ? header(reply.readUInt16BE(0), false, RCODE.NOERROR, 0, 0, true) : reply;
      udp.send(out, peer.port, peer.address);
    });
  });
  const tcp: Server = createServer((socket) => {
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const msg = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + msg.length);
        void respond(msg, lookup, queries).then((reply) => {
          if (!reply || socket.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([len, reply]));
        });
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await Promise.all([
    new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, '127.0.0.1', () => resolve());
    }),
    new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, '127.0.0.1', () => resolve());
    }),
  ]);
  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    stop: () =>
      new Promise<void>((resolve) => {
        tcp.close(() => udp.close(() => resolve()));
      }),
  };
}
