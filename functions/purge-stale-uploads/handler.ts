import { createJob } from '../../shared/job.ts';
import { loadPurgeStaleUploadsConfig } from './config.ts';
import { job } from './job.ts';

export const { run, handler } = createJob(job, loadPurgeStaleUploadsConfig(process.env));
