import { encodeInventoryFile } from '../test/support/inventory-writer.ts';
import { readInventoryFile } from '../functions/purge-stale-uploads/inventory.ts';
const rows = Array.from({length: 250000}, (_, i) => ({ key: i % 10 === 0 ? `docker/registry/v2/repositories/a/b/_uploads/x${i}/startedat` : `docker/registry/v2/repositories/a/b/_layers/sha256/${i}/link`, size: i, lastModified: 1700000000000 + i }));
for (const format of ['Parquet', 'CSV'] as const) {
  const t0 = Date.now();
  const buf = encodeInventoryFile('bkt', rows, format);
  const t1 = Date.now();
  const fake = { send: async (cmd: any) => { const r = cmd.input.Range; let b = buf; if (r) { const [s, e] = r.slice(6).split('-').map(Number); b = buf.subarray(s, e + 1); } const { Readable } = await import('node:stream'); const body: any = Readable.from([b]); body.transformToByteArray = async () => new Uint8Array(b); return { Body: body }; } } as any;
  const stats = { rows: 0, uploadRows: 0, bytesRead: 0 };
  const out = await readInventoryFile(fake, { bucket: 'b', file: { key: 'k', size: buf.byteLength }, format, columns: format === 'CSV' ? ['Bucket','Key','Size','LastModifiedDate'] : ['bucket','key','size','last_modified_date'], now: 0, signal: new AbortController().signal }, stats);
  console.log(format, buf.byteLength, 'write', t1 - t0, 'ms read', Date.now() - t1, 'ms', stats, out[1]);
}
