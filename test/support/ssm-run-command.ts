import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * SSM Run Command for instances that are local directories: an HTTP stand-in in front of moto (whose SendCommand
 * runs nothing) that answers SendCommand and GetCommandInvocation for the instance ids it has been given, by
 * running a command here (e.g. infra/assets/install-htpasswd.sh against a running registry's auth directory), and
 * forwards every other SSM call to moto. Point the job's SSM client at it with AWS_ENDPOINT_URL_SSM.
 */

export interface InvocationRun {
  readonly status: 'Success' | 'Failed';
  readonly stdout: string;
  readonly stderr: string;
}

export interface SentToInstance {
  readonly commandId: string;
  readonly instanceId: string;
  readonly documentName: string;
  readonly parameters: Record<string, string[]>;
}

export interface SsmRunCommand {
  readonly endpoint: string;
  /** Every SendCommand, in order, as sent. */
  readonly sent: { commandId: string; instanceIds: string[]; parameters: Record<string, string[]> }[];
  stop(): Promise<void>;
}

export interface SsmRunCommandOptions {
  /** moto's endpoint: everything but SendCommand / GetCommandInvocation goes there. */
  readonly target: string;
  /** Whether SSM knows this instance (else SendCommand answers InvalidInstanceId, as SSM does). */
  knows(instanceId: string): boolean;
  /** Runs the document on one instance. */
  run(invocation: SentToInstance): Promise<InvocationRun>;
  /** Awaited before a SendCommand is answered (a test's moment "during the run"). */
  beforeSend?(parameters: Record<string, string[]>): Promise<void>;
}

const json = (res: http.ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(text) }).end(text);
};
const awsError = (res: http.ServerResponse, type: string, message: string): void => json(res, 400, { __type: type, message });

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startSsmRunCommand(options: SsmRunCommandOptions): Promise<SsmRunCommand> {
  const to = new URL(options.target);
  const sent: SsmRunCommand['sent'] = [];
  const invocations = new Map<string, { done?: InvocationRun }>();

  const sendCommand = async (
    body: { InstanceIds?: string[]; DocumentName?: string; Parameters?: Record<string, string[]> },
    res: http.ServerResponse,
  ) => {
    const instanceIds = body.InstanceIds ?? [];
    const parameters = body.Parameters ?? {};
    await options.beforeSend?.(parameters);
    if (instanceIds.some((id) => !options.knows(id)))
      return awsError(res, 'InvalidInstanceId', 'Instances not in a valid state for account');
    const commandId = `stand-in-${sent.length + 1}`;
    sent.push({ commandId, instanceIds: [...instanceIds], parameters });
    for (const instanceId of instanceIds) {
      const entry: { done?: InvocationRun } = {};
      invocations.set(`${commandId}/${instanceId}`, entry);
      void options
        .run({ commandId, instanceId, documentName: body.DocumentName ?? '', parameters })
        .catch((error: unknown) => ({ status: 'Failed' as const, stdout: '', stderr: String(error) }))
        .then((done) => (entry.done = done));
    }
    json(res, 200, { Command: { CommandId: commandId, DocumentName: body.DocumentName, InstanceIds: instanceIds, Status: 'Pending' } });
  };

  const getInvocation = (body: { CommandId?: string; InstanceId?: string }, res: http.ServerResponse) => {
    const entry = invocations.get(`${body.CommandId}/${body.InstanceId}`);
    if (!entry) return awsError(res, 'InvocationDoesNotExist', '');
    const base = { CommandId: body.CommandId, InstanceId: body.InstanceId };
    if (!entry.done) return json(res, 200, { ...base, Status: 'InProgress', StatusDetails: 'InProgress' });
    const { status, stdout, stderr } = entry.done;
    json(res, 200, { ...base, Status: status, StatusDetails: status, StandardOutputContent: stdout, StandardErrorContent: stderr });
  };

  const forward = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => {
    const upstream = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
    upstream.end(body);
  };

  const server = http.createServer((req, res) => {
    void readBody(req).then(async (body) => {
      const target = String(req.headers['x-amz-target'] ?? '');
      if (target === 'AmazonSSM.SendCommand') return sendCommand(JSON.parse(body.toString('utf8')) as never, res);
      if (target === 'AmazonSSM.GetCommandInvocation') return getInvocation(JSON.parse(body.toString('utf8')) as never, res);
      forward(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    sent,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
