import { describe, expect, it } from 'vitest';
import { installOutcome } from '../../functions/sync-htpasswd/apply.ts';
import { parseScriptOutput } from '../../functions/sync-htpasswd/script.ts';

describe('parseScriptOutput / installOutcome (what an instance printed)', () => {
  const A = 'a'.repeat(64);
  const B = 'b'.repeat(64);

  it('reads the contract lines, the last of each winning, none as null, and ignores anything else', () => {
    expect(parseScriptOutput(`noise\nprevious sha256=none\ninstalled sha256=${A}\n`)).toEqual({ previous: null, installed: A });
    expect(parseScriptOutput(`current sha256=${A}\ncurrent sha256=${B}\n`)).toEqual({ current: B });
    expect(parseScriptOutput('current sha256=ABC\ninstalled sha256=\n')).toEqual({});
  });

  it.each([
    [
      { state: 'success', output: `previous sha256=${B}\ninstalled sha256=${A}\n` },
      { status: 'applied', detail: { changed: true, previousSha256: B, installedSha256: A } },
    ],
    [
      { state: 'success', output: `previous sha256=${A}\ninstalled sha256=${A}\n` },
      { status: 'applied', detail: { changed: false, previousSha256: A, installedSha256: A } },
    ],
    [
      { state: 'success', output: '' },
      { status: 'failed', error: 'the command succeeded but printed no "installed sha256=" line' },
    ],
    [
      { state: 'success', output: `installed sha256=${B}\n` },
      { status: 'failed', error: 'installed sha256 bbbbbbbbbbbb, expected aaaaaaaaaaaa' },
    ],
    [
      { state: 'failed', error: 'Failed: boom' },
      { status: 'failed', error: 'Failed: boom' },
    ],
    [
      { state: 'cancelled', error: 'Cancelled: not run' },
      { status: 'skipped', reason: 'Cancelled: not run' },
    ],
  ] as const)('%j → %j', (result, outcome) => {
    expect(installOutcome(result, { sha256: A, recentlyLaunched: false, launchTime: null })).toEqual(outcome);
  });

  it('not registered with SSM: skipped for a recently launched instance, failed for an older one (dead agent)', () => {
    const result = { state: 'not-registered', error: 'not registered with SSM yet (InvalidInstanceId)' } as const;
    expect(installOutcome(result, { sha256: A, recentlyLaunched: true, launchTime: '2026-05-01T11:55:00.000Z' })).toEqual({
      status: 'skipped',
      reason:
        'not registered with SSM yet (InvalidInstanceId): its boot script installs the published file; the hourly drift check catches up',
      held: 'not-registered',
    });
    expect(installOutcome(result, { sha256: A, recentlyLaunched: false, launchTime: '2026-04-01T00:00:00.000Z' })).toEqual({
      status: 'failed',
      error:
        'unreachable through SSM: not registered with SSM (InvalidInstanceId), but launched 2026-04-01T00:00:00.000Z, past SSM_REGISTRATION_GRACE: its SSM agent is down or it lost SSM access, and it keeps serving its old htpasswd; check the agent or replace the instance',
    });
  });
});
