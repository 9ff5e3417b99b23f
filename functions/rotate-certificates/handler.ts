import { createJob } from '../../shared/job.ts';
import { loadRotateCertificatesConfig } from './config.ts';
import { job } from './job.ts';

export const { run, handler } = createJob(job, loadRotateCertificatesConfig(process.env));
