import { createJob } from '../../shared/job.ts';
import { withLease } from '../../shared/lease.ts';
import { loadPurgeStaleUploadsConfig } from './config.ts';
import { job } from './job.ts';

// STORAGE_LEASE=true (a fleet with collect-garbage): never run while collect-garbage runs, nor it while this does.
const leased = withLease(
  job,
  (c) => (c.storageLease ? { bucket: c.bucket, root: c.root } : undefined),
  (c) => c.s3,
);

export const { run, handler } = createJob(leased, loadPurgeStaleUploadsConfig(process.env));
