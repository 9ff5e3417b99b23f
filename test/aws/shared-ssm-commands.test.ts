// The one SSM Run Command engine (shared/ssm-commands.ts), on aws-sdk-client-mock: batches, the rule for each way
// a command does not finish, and the bounds (wait, deadline, time budget). Each test asserts the results map.
import {
  GetCommandInvocationCommand,
  InvalidInstanceId,
  InvocationDoesNotExist,
  SendCommandCommand,
  SSMClient,
  type GetCommandInvocationCommandOutput,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  awaitResults,
  MAX_IDS_PER_SEND,
  MISSING_INVOCATION_POLLS,
  runCommand,
  sendCommand,
  type CommandRequest,
  type CommandResult,
} from '../../shared/ssm-commands.ts';

const ssm = mockClient(SSMClient);
const client = new SSMClient({ region: 'us-east-1' });
const signal = new AbortController().signal;
const REQUEST: CommandRequest = { documentName: 'doc', parameters: { Mode: ['report'] }, timeoutSeconds: 60, comment: 'test' };
const FAST = { signal, waitMs: 2_000, pollIntervalMs: 10 };

type Answer =
  Partial<GetCommandInvocationCommandOutput> | 'missing' | ((poll: number) => Partial<GetCommandInvocationCommandOutput> | 'missing');
let answers: Record<string, Answer>;
let sends: string[][];
let unknown: Set<string>;
const polls = new Map<string, number>();

beforeEach(() => {
  ssm.reset();
  answers = {};
  sends = [];
  unknown = new Set();
  polls.clear();
  ssm.on(SendCommandCommand).callsFake((input: { InstanceIds: string[] }) => {
    if (input.InstanceIds.some((id) => unknown.has(id))) throw new InvalidInstanceId({ message: 'not valid', $metadata: {} });
    sends.push(input.InstanceIds);
    return { Command: { CommandId: `cmd-${sends.length}` } };
  });
  ssm.on(GetCommandInvocationCommand).callsFake((input: { CommandId: string; InstanceId: string }) => {
    const poll = (polls.get(input.InstanceId) ?? 0) + 1;
    polls.set(input.InstanceId, poll);
    const answer = answers[input.InstanceId] ?? { Status: 'Success', StandardOutputContent: `hello from ${input.InstanceId}\n` };
    const value = typeof answer === 'function' ? answer(poll) : answer;
    if (value === 'missing') throw new InvocationDoesNotExist({ message: '', $metadata: {} });
    return value;
  });
});

const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${String(i).padStart(3, '0')}`);
const states = (results: Map<string, CommandResult>) => Object.fromEntries([...results].map(([id, r]) => [id, r.state]));

describe('shared SSM engine: runCommand', () => {
  it('sends at most 50 explicit ids per SendCommand and answers one result per instance, output untouched', async () => {
    const results = await runCommand(client, { ...REQUEST, maxConcurrency: '10', maxErrors: '100%' }, ids(120), FAST);
    expect(sends.map((s) => s.length)).toEqual([MAX_IDS_PER_SEND, 50, 20]);
    expect(results.size).toBe(120);
    expect(results.get('i-119')).toEqual({ state: 'success', commandId: 'cmd-3', output: 'hello from i-119\n' });
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'doc',
      Parameters: { Mode: ['report'] },
      MaxConcurrency: '10',
      MaxErrors: '100%',
      TimeoutSeconds: 60,
      Comment: 'test',
    });
  });

  it('leaves MaxConcurrency and MaxErrors to SSM when the request gives none (a prune sends only ids and a timeout)', async () => {
    await runCommand(client, { ...REQUEST, timeoutSeconds: 600 }, ['i-1'], FAST);
    const input = ssm.commandCalls(SendCommandCommand)[0]?.args[0].input;
    expect(input).toMatchObject({ InstanceIds: ['i-1'], TimeoutSeconds: 600 });
    expect(input && 'MaxErrors' in input).toBe(false);
    expect(input && 'MaxConcurrency' in input).toBe(false);
  });

  it('InvalidInstanceId refuses the whole call: sent one by one, the unknown id is not-registered, the rest run', async () => {
    unknown.add('i-new');
    const results = await runCommand(client, REQUEST, ['i-1', 'i-new', 'i-2'], FAST);
    expect(ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.InstanceIds)).toEqual([
      ['i-1', 'i-new', 'i-2'],
      ['i-1'],
      ['i-new'],
      ['i-2'],
    ]);
    expect(states(results)).toEqual({ 'i-1': 'success', 'i-new': 'not-registered', 'i-2': 'success' });
    expect(results.get('i-new')).toEqual({ state: 'not-registered', error: 'not registered with SSM yet (InvalidInstanceId)' });
  });

  it('any other SendCommand error fails every instance of the batch, naming the call', async () => {
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const results = await runCommand(client, REQUEST, ['i-1', 'i-2'], FAST);
    expect([...results.values()]).toEqual([
      { state: 'failed', error: 'SendCommand: ThrottlingException: Rate exceeded' },
      { state: 'failed', error: 'SendCommand: ThrottlingException: Rate exceeded' },
    ]);
  });

  it(`an invocation that never appears is not-registered after ${MISSING_INVOCATION_POLLS} polls, not after the whole wait`, async () => {
    answers['i-ghost'] = 'missing';
    const started = Date.now();
    const results = await runCommand(client, REQUEST, ['i-ghost'], { ...FAST, waitMs: 60_000 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(polls.get('i-ghost')).toBe(MISSING_INVOCATION_POLLS);
    expect(results.get('i-ghost')).toEqual({
      state: 'not-registered',
      commandId: 'cmd-1',
      error: 'not registered with SSM yet (InvocationDoesNotExist)',
    });
  });

  it('an invocation registered late (InvocationDoesNotExist first) is polled on to its result', async () => {
    answers['i-late'] = (poll) => (poll < 3 ? 'missing' : { Status: 'Success', StandardOutputContent: 'ok' });
    expect((await runCommand(client, REQUEST, ['i-late'], FAST)).get('i-late')).toEqual({
      state: 'success',
      commandId: 'cmd-1',
      output: 'ok',
    });
  });

  it.each(['Undeliverable', 'Terminated', 'Delivery Timed Out', 'DeliveryTimedOut'])(
    'StatusDetails %s is undelivered, whatever Status says',
    async (details) => {
      answers['i-1'] = { Status: 'Pending', StatusDetails: details };
      answers['i-2'] = { Status: 'Failed', StatusDetails: details };
      const results = await runCommand(client, REQUEST, ['i-1', 'i-2'], FAST);
      expect(results.get('i-1')).toEqual({
        state: 'undelivered',
        commandId: 'cmd-1',
        status: 'Pending',
        error: `not delivered (${details}): command cmd-1`,
      });
      expect(results.get('i-2')).toMatchObject({ state: 'undelivered', status: 'Failed' });
    },
  );

  it('Failed and TimedOut on the instance are failed with the last stderr line; the output is kept for the caller', async () => {
    answers['i-1'] = {
      Status: 'Failed',
      StatusDetails: 'Failed',
      StandardOutputContent: '{"partial":1}\n',
      StandardErrorContent: 'noise\nscript: disk full\n',
    };
    answers['i-2'] = { Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut' };
    const results = await runCommand(client, REQUEST, ['i-1', 'i-2'], FAST);
    expect(results.get('i-1')).toEqual({
      state: 'failed',
      commandId: 'cmd-1',
      status: 'Failed',
      statusDetails: 'Failed',
      output: '{"partial":1}\n',
      stderr: 'noise\nscript: disk full\n',
      error: 'Failed: script: disk full',
    });
    expect(results.get('i-2')).toEqual({
      state: 'failed',
      commandId: 'cmd-1',
      status: 'TimedOut',
      statusDetails: 'ExecutionTimedOut',
      output: '',
      stderr: '',
      error: 'TimedOut (ExecutionTimedOut)',
    });
  });

  it('Cancelled is cancelled (SSM did not run it)', async () => {
    answers['i-1'] = { Status: 'Cancelled', StatusDetails: 'Cancelled' };
    expect((await runCommand(client, REQUEST, ['i-1'], FAST)).get('i-1')).toMatchObject({
      state: 'cancelled',
      error: expect.stringMatching(/^Cancelled: not run/),
    });
  });

  it('a GetCommandInvocation error fails that instance only', async () => {
    answers['i-1'] = () => {
      throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    };
    const results = await runCommand(client, REQUEST, ['i-1', 'i-2'], FAST);
    expect(results.get('i-1')).toEqual({
      state: 'failed',
      commandId: 'cmd-1',
      error: 'GetCommandInvocation: AccessDeniedException: denied',
    });
    expect(results.get('i-2')?.state).toBe('success');
  });

  it('still running when the wait ends: unfinished, with its last status and command id (it may still run there)', async () => {
    answers['i-slow'] = { Status: 'InProgress' };
    answers['i-quiet'] = 'missing'; // fewer polls than MISSING_INVOCATION_POLLS fit in the wait
    const results = await runCommand(client, REQUEST, ['i-slow', 'i-quiet'], { signal, waitMs: 300, pollIntervalMs: 200 });
    expect(results.get('i-slow')).toEqual({
      state: 'unfinished',
      commandId: 'cmd-1',
      status: 'InProgress',
      error: expect.stringMatching(/^no result within 0s \(last status InProgress; command cmd-1\)$/),
    });
    expect(results.get('i-quiet')).toEqual({
      state: 'not-registered',
      commandId: 'cmd-1',
      error: 'not registered with SSM yet (no invocation appeared)',
    });
  });

  it('sends nothing once the time budget is gone, and a long poll interval ends as soon as it runs out', async () => {
    expect((await runCommand(client, REQUEST, ['i-1'], { ...FAST, hasTime: () => false })).size).toBe(0);
    expect(sends).toEqual([]);

    answers['i-1'] = { Status: 'InProgress' };
    let budget = true;
    setTimeout(() => (budget = false), 300);
    const started = Date.now();
    const results = await runCommand(client, REQUEST, ['i-1', ...ids(60)], {
      signal,
      waitMs: 600_000,
      pollIntervalMs: 30_000,
      hasTime: () => budget,
    });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(results.get('i-1')?.state).toBe('unfinished');
    expect(sends).toHaveLength(1); // the second batch was never sent
    expect(results.has('i-059')).toBe(false);
  });

  it('a deadline stops further sends and ends every wait by it', async () => {
    for (const id of ids(51)) answers[id] = { Status: 'InProgress' };
    const started = Date.now();
    const results = await runCommand(client, REQUEST, ids(51), { signal, waitMs: 600_000, pollIntervalMs: 50, deadline: Date.now() + 500 });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(sends.map((s) => s.length)).toEqual([50]);
    expect(results.get('i-000')?.state).toBe('unfinished');
    expect(results.has('i-050')).toBe(false);
  });
});

describe('shared SSM engine: sendCommand + awaitResults (send first, work meanwhile, read later)', () => {
  it('counts the wait from the send, so work done in between shortens it', async () => {
    answers['i-1'] = { Status: 'InProgress' };
    const sent = await sendCommand(client, REQUEST, ['i-1'], signal);
    await new Promise((resolve) => setTimeout(resolve, 400)); // e.g. the volume work of purge-disk-volumes
    const started = Date.now();
    const results = await awaitResults(client, sent, { signal, waitMs: 400, pollIntervalMs: 50 });
    expect(Date.now() - started).toBeLessThan(300);
    expect(results.get('i-1')).toMatchObject({ state: 'unfinished', commandId: 'cmd-1' });
  });

  it('keeps what the send already knew (an unknown id) next to the polled results', async () => {
    unknown.add('i-new');
    const sent = await sendCommand(client, REQUEST, ['i-1', 'i-new'], signal);
    expect(states(await awaitResults(client, sent, FAST))).toEqual({ 'i-new': 'not-registered', 'i-1': 'success' });
  });

  it('refuses more than 50 ids in one call', async () => {
    await expect(sendCommand(client, REQUEST, ids(51), signal)).rejects.toThrow('sendCommand: 51 instance ids, at most 50');
    expect(sends).toEqual([]);
  });
});

// Options for a caller whose own rules differ (purge-disk-volumes' prune); each default is the rule above.
describe('shared SSM engine: options', () => {
  it('splitOnInvalidInstanceId false: an unknown id fails the whole send, naming the call, and nothing is re-sent', async () => {
    unknown.add('i-new');
    const results = await runCommand(client, { ...REQUEST, splitOnInvalidInstanceId: false }, ['i-1', 'i-new'], FAST);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    expect(ssm).not.toHaveReceivedCommand(GetCommandInvocationCommand);
    expect([...results]).toEqual([
      ['i-1', { state: 'failed', error: 'SendCommand: InvalidInstanceId: not valid' }],
      ['i-new', { state: 'failed', error: 'SendCommand: InvalidInstanceId: not valid' }],
    ]);
  });

  it('pollAtDeadline: when less than an interval is left, sleeps what is left and reads once more at the end of the wait', async () => {
    answers['i-1'] = (poll) => (poll < 3 ? { Status: 'InProgress' } : { Status: 'Success', StandardOutputContent: 'done' });
    const wait = { signal, waitMs: 300, pollIntervalMs: 200 };
    expect((await runCommand(client, REQUEST, ['i-1'], wait)).get('i-1')).toMatchObject({ state: 'unfinished', status: 'InProgress' });
    expect(polls.get('i-1')).toBe(2); // 0 ms and 200 ms: a third read would come after the wait

    polls.clear();
    const started = Date.now();
    const results = await runCommand(client, REQUEST, ['i-1'], { ...wait, pollAtDeadline: true });
    expect(results.get('i-1')).toEqual({ state: 'success', commandId: 'cmd-2', output: 'done' });
    expect(polls.get('i-1')).toBe(3); // 0, 200 and 300 ms
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('missingInvocationPolls: an invocation may appear after more misses; without one it is not-registered when the wait ends', async () => {
    answers['i-late'] = (poll) => (poll <= MISSING_INVOCATION_POLLS + 2 ? 'missing' : { Status: 'Success', StandardOutputContent: 'ok' });
    answers['i-ghost'] = 'missing';
    const options = { ...FAST, waitMs: 400, missingInvocationPolls: Number.POSITIVE_INFINITY };
    const results = await runCommand(client, REQUEST, ['i-late', 'i-ghost'], options);
    expect(results.get('i-late')).toEqual({ state: 'success', commandId: 'cmd-1', output: 'ok' });
    expect(results.get('i-ghost')).toEqual({
      state: 'not-registered',
      commandId: 'cmd-1',
      error: 'not registered with SSM yet (no invocation appeared)',
    });
    expect(polls.get('i-ghost')).toBeGreaterThan(MISSING_INVOCATION_POLLS + 2);
  });
});
