import { createJob } from '../../shared/job.ts';
import { withLease } from '../../shared/lease.ts';
import { loadCollectGarbageConfig } from './config.ts';
import { job } from './job.ts';

export const { run, handler } = createJob(
  withLease(
    job,
    (c) => ({ bucket: c.bucket, root: c.root }),
    (c) => c.s3,
  ),
  loadCollectGarbageConfig(process.env),
);
