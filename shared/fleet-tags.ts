/**
 * Every tag the control plane reads or writes, in one place (jobs, infra's IAM conditions and the demo import
 * it from here, never from a job's folder). The fleet tag marks what belongs to one fleet; the marker tags
 * carry one job's state between runs and all sit under one prefix, so IAM can allow exactly these keys.
 */

/** The fleet tag's default key (its value is the stack name): on instances, volumes, certificates this job made. */
export const DEFAULT_FLEET_TAG_KEY = 'registry-fleet';
/** The prefix of every marker tag a job writes. */
export const MARKER_TAG_PREFIX = 'registry-fleet:';

/** replace-unhealthy-instances: when this job first saw the instance unhealthy (ISO time). Confirmation starts here. */
export const UNHEALTHY_SINCE_TAG = `${MARKER_TAG_PREFIX}unhealthy-since`;
/**
 * replace-unhealthy-instances: the capacity-preserving path raised desired capacity to replace this instance.
 * Value `<ISO time> desired-before=<n>`: when, and the desired capacity before the raise.
 */
export const REPLACING_TAG = `${MARKER_TAG_PREFIX}replacing`;
/**
 * replace-unhealthy-instances, on the Auto Scaling group (not propagated): the replacement budget's ledger, the
 * start times (ISO, to the second, space-separated) of the replacements inside the budget window.
 */
export const REPLACEMENTS_TAG = `${MARKER_TAG_PREFIX}replacements`;

/**
 * replace-unhealthy-instances: the name prefix of its follow-up schedules (EventBridge Scheduler, in the job's own
 * schedule group). Not a tag, but the same kind of contract: infra's IAM allows the job exactly these names.
 */
export const FOLLOW_UP_SCHEDULE_PREFIX = 'replace-follow-up-';

/**
 * purge-disk-volumes: written on a volume the first time a run finds it orphaned, and again when CloudTrail shows
 * it was used since; value = exactly `Date#toISOString` (`2026-11-23T03:00:00.000Z`), any other value is no mark.
 */
export const MARK_TAG = `${MARKER_TAG_PREFIX}orphaned-at`;
/** Operators' opt-out: a volume with this tag (any value but `false`) is never marked, unmarked or deleted. */
export const KEEP_TAG = `${MARKER_TAG_PREFIX}keep`;
/** purge-disk-volumes: on the snapshot taken before a delete, the id of the volume it came from. */
export const SOURCE_VOLUME_TAG = `${MARKER_TAG_PREFIX}source-volume`;

/**
 * rotate-certificates: on a certificate this job requested, the ARN of the listener certificate it replaces.
 * Under the one marker prefix since the second release, so IAM's aws:TagKeys can name the job's keys exactly;
 * the first release wrote `registry:rotation-of` (LEGACY_TAG_ROTATION_OF), which the job still reads.
 */
export const TAG_ROTATION_OF = `${MARKER_TAG_PREFIX}rotation-of`;
/** rotate-certificates: set when a swap to this certificate was rolled back (ISO time). Blocks automatic retries. */
export const TAG_ROLLED_BACK_AT = `${MARKER_TAG_PREFIX}rolled-back-at`;
/**
 * The first release's keys: read (deployed fleets have rotations in flight and rollbacks marked under them),
 * never written. Drop them once no certificate carries them.
 */
export const LEGACY_TAG_ROTATION_OF = 'registry:rotation-of';
export const LEGACY_TAG_ROLLED_BACK_AT = 'registry:rolled-back-at';
