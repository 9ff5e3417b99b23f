import { createJob } from '../../shared/job.ts';
import { loadReplaceUnhealthyInstancesConfig } from './config.ts';
import { job } from './job.ts';

export const { run, handler } = createJob(job, loadReplaceUnhealthyInstancesConfig(process.env));
