import type { Outcome, Outcomes, RunContext } from '../../shared/job.ts';
import { applyEach } from '../../shared/job.ts';
import type { Config } from './config.ts';
import type { GcAction, GcPlan } from './model.ts';
import { saveCheckpoint } from './checkpoint.ts';
import type { Reader } from './listing.ts';
import { readerOf, type GcClients } from './observe.ts';
import { expireManifest, restoreKey, sweep } from './sweep.ts';

/**
 * The job's apply: a restore plan removes delete markers; a sweep plan expires, re-checks, deletes and restores
 * what raced (sweep.ts), in that order, on the whole plan at once (the re-checks cover every candidate together).
 */
export async function apply(plan: GcPlan, ctx: RunContext<Config>, { s3 }: GcClients): Promise<Outcomes> {
  const r = readerOf(s3, ctx.config, ctx.signal);
  const at = new Map<GcAction, number>(plan.actions.map((a, i) => [a, i]));
  const outcomes = new Array<Outcome | undefined>(plan.actions.length).fill(undefined);
  const put = (list: readonly GcAction[], done: readonly (Outcome | undefined)[]) =>
    list.forEach((a, i) => (outcomes[at.get(a) as number] = done[i]));
  const of = <T extends GcAction['type']>(type: T) => plan.actions.filter((a): a is Extract<GcAction, { type: T }> => a.type === type);

  const restores = of('restore-blob');
  put(
    restores,
    await applyEach(
      restores,
      ctx,
      async (a) => {
        const marker = await restoreKey(r, a.key);
        return marker
          ? { status: 'applied', detail: { restored: true, removedMarker: marker } }
          : { status: 'skipped', reason: 'no delete marker any more: already restored' };
      },
      { concurrency: 8 },
    ),
  );

  const markStartedAt = plan.markStartedAt ?? 0;
  const expiries = of('expire-manifest');
  const links = of('delete-layer-link');
  const blobs = of('delete-blob');
  // Indexes first: a child goes only once every index expiry applied, so an index that stays keeps its children.
  const indexes = expiries.filter((a) => a.children.length > 0);
  const images = expiries.filter((a) => a.children.length === 0);
  const expire = (list: typeof expiries) => applyEach(list, ctx, (a) => expireManifest(r, a, markStartedAt), { concurrency: 8 });
  const wave1 = await expire(indexes);
  put(indexes, wave1);
  const rest = [...images, ...links, ...blobs];
  // A manifest that stays references its blobs (and an index its children), which the plan counted as free.
  const held: Outcome = { status: 'skipped', reason: 'an expiry did not apply this run: what it freed waits for the next run' };
  if (wave1.some((o) => o?.status !== 'applied')) {
    put(
      rest,
      rest.map(() => held),
    );
    return outcomes;
  }
  const wave2 = await expire(images);
  put(images, wave2);
  if (wave2.some((o) => o?.status !== 'applied')) {
    put(
      [...links, ...blobs],
      [...links, ...blobs].map(() => held),
    );
    return outcomes;
  }
  if (links.length + blobs.length > 0)
    put([...links, ...blobs], await sweep(r, links, blobs, { markStartedAt, settleMs: ctx.config.settleMs }, ctx));
  await keepWhatIsLeft(r, plan, outcomes, ctx);
  return outcomes;
}

/**
 * Save the links and blobs this run did not reach (the limit, the time budget) for the next run, or clear the
 * checkpoint when none are left. A held expiry means the next run must mark again: the checkpoint is cleared.
 */
async function keepWhatIsLeft(r: Reader, plan: GcPlan, outcomes: readonly (Outcome | undefined)[], ctx: RunContext<Config>): Promise<void> {
  if (!plan.checkpoint || plan.markStartedAt === undefined) return;
  const expiryHeld = plan.skipped.some((a) => a.type === 'expire-manifest' && a.held === 'limit');
  const sweepable = (a: GcAction) => a.type === 'delete-blob' || a.type === 'delete-layer-link';
  const left = expiryHeld
    ? []
    : [
        ...plan.skipped.filter((a) => a.held === 'limit' && sweepable(a)),
        ...plan.actions.filter((a, i) => sweepable(a) && outcomes[i] === undefined),
      ];
  if (left.length === 0 && !plan.checkpoint.found) return;
  await saveCheckpoint(r, ctx.config.policy, plan.markStartedAt, plan.checkpoint.runs, left);
}
