#!/bin/bash
# Drain before terminate, run by registry-drain.service (settings: its Environment=). Why each step is so: README
# "How drain works". The hook's heartbeat CONTINUEs anyway, so this can only ever shorten a termination.
set -euo pipefail
: "${DRAIN_HOOK_NAME:?}" "${DRAIN_TIMEOUT_SECONDS:?}" "${DRAIN_HEARTBEAT_SECONDS:?}"
REGISTRY_URL=${REGISTRY_URL:-http://127.0.0.1:5000/}
REGISTRY_METRICS_URL=${REGISTRY_METRICS_URL:-http://127.0.0.1:5001/metrics}
IMDS=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
POLL=${DRAIN_POLL_SECONDS:-5}

log() { echo "registry-drain: $(date -u +%FT%TZ) $*"; }

imds() {
  local t
  t=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$IMDS/latest/api/token") &&
    curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $t" "$IMDS/latest/meta-data/$1"
}

# No series: unknown, never 0. Connection refused on the main port (curl exit 7): nothing in flight.
in_flight() {
  local page code=0
  if page=$(curl -fsS -m 5 "$REGISTRY_METRICS_URL" 2>/dev/null); then
    awk '/^registry_http_in_flight_requests[{ ]/ { n += $NF; s = 1 } END { if (!s) exit 1; print n }' <<<"$page"
    return
  fi
  curl -sS -o /dev/null -m 5 "$REGISTRY_URL" 2>/dev/null || code=$?
  [ "$code" -eq 7 ] && echo 0
}

# Done after two quiet polls in a row (between a client's PATCH and PUT nothing is in flight), or at the deadline.
drain() {
  local n last='' quiet=0
  log "termination started: waiting for requests in flight (at most ${DRAIN_TIMEOUT_SECONDS}s)"
  while :; do
    n=$(in_flight) || n=unknown
    [ "$n" = "$last" ] || log "requests in flight: $n"
    last=$n
    if [ "$n" = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    [ "$quiet" -lt 2 ] || return 0
    [ "$(date +%s)" -lt "$deadline" ] || { log "drain timeout"; return 0; }
    sleep "$POLL"
  done
}

# Retries while the action does not exist yet (deregistration comes first), until the heartbeat is over.
release() {
  local group='' out last='' end=$((deadline + DRAIN_HEARTBEAT_SECONDS))
  while [ "$(date +%s)" -lt "$end" ]; do
    if [ -z "$group" ]; then
      out=$(aws ec2 describe-tags --region "$region" --output text --query 'Tags[0].Value' \
        --filters "Name=resource-id,Values=$id" Name=key,Values=aws:autoscaling:groupName 2>&1) && [ "$out" != None ] && group=$out
    fi
    if [ -n "$group" ] && out=$(aws autoscaling complete-lifecycle-action --region "$region" --instance-id "$id" \
      --auto-scaling-group-name "$group" --lifecycle-hook-name "$DRAIN_HOOK_NAME" --lifecycle-action-result CONTINUE 2>&1); then
      log "completed ${DRAIN_HOOK_NAME} of ${group}: CONTINUE"
      return 0
    fi
    [ "$out" = "$last" ] || log "cannot complete the hook yet: $(tr -s '\n' ' ' <<<"$out")"
    last=$out
    sleep "$POLL"
  done
  log "gave up: the heartbeat timeout continues the termination"
}

log "watching for termination (hook ${DRAIN_HOOK_NAME})"
until [ "$(imds autoscaling/target-lifecycle-state 2>/dev/null)" = Terminated ]; do sleep "$POLL"; done
deadline=$(($(date +%s) + DRAIN_TIMEOUT_SECONDS))
until id=$(imds instance-id) && region=$(imds placement/region); do sleep "$POLL"; done
drain
release
