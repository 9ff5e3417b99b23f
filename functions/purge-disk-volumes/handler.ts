import { createJob } from '../../shared/job.ts';
import { loadPurgeDiskVolumesConfig } from './config.ts';
import { job } from './job.ts';

export const { run, handler } = createJob(job, loadPurgeDiskVolumesConfig(process.env));
