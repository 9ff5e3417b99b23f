import { createJob } from '../../shared/job.ts';
import { loadSyncHtpasswdConfig } from './config.ts';
import { job } from './job.ts';

export const { run, handler } = createJob(job, loadSyncHtpasswdConfig(process.env));
