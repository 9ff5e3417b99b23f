#!/bin/bash
# Boots one registry instance (Amazon Linux 2023). Installed by the user data as
# /usr/local/sbin/registry-bootstrap.sh and run by systemd as registry-bootstrap.service (Type=oneshot,
# Restart=on-failure, enabled): a failed step exits non-zero and systemd runs the whole boot again after
# RestartSec, and a reboot runs it again too. Every step is idempotent. It never gives up on its own: an
# instance that cannot serve says so in its log, and (past BOOT_REPORT_AFTER_SECONDS) in the stack's events.
#
# Order matters: the registry must never start without an htpasswd file (distribution would create a
# `docker` user with a random password) nor without the fleet's shared http.secret (uploads that move
# between instances would fail with BLOB_UPLOAD_INVALID).
set -euo pipefail

set -a
# shellcheck source=/dev/null
. /etc/registry-fleet/fleet.env
set +a

: "${AWS_REGION:?}" "${REGISTRY_IMAGE:?}" "${HTTP_SECRET_ARN:?}" "${HTPASSWD_SOURCE:?}" "${HTPASSWD_POLL_SECONDS:?}"
: "${LOG_GROUP:?}" "${BOOT_REPORT_AFTER_SECONDS:?}"
WAIT_HANDLE_URL=${WAIT_HANDLE_URL:-}
# ECR pull-through cache (context ecrPullThroughCache): the registry host to log in to, and the image by tag.
ECR_REGISTRY=${ECR_REGISTRY:-}
REGISTRY_IMAGE_WARM=${REGISTRY_IMAGE_WARM:-}
AUTH_DIR=/etc/docker/registry/auth
REGISTRY_DIR=/etc/docker/registry
CWAGENT_CONFIG=/opt/aws/amazon-cloudwatch-agent/etc/registry-fleet.json
STATE_DIR=/var/lib/registry-fleet
REGISTRY_URL=http://127.0.0.1:5000/
BACKOFF_MAX_SECONDS=15

log() { echo "registry-bootstrap: $*"; }

# --- signalling: the stack's wait condition hears SUCCESS once the registry serves, FAILURE if it is late ---

instance_id() {
  local token
  token=$(curl -fsS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token) &&
    curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id
}

# signal STATUS REASON: one PUT to the wait-condition handle per status (best effort: the boot never depends on it).
signal() {
  local status=$1 reason id body
  [ -n "$WAIT_HANDLE_URL" ] || return 0
  [ -f "$STATE_DIR/signalled-$status" ] && return 0
  id=$(instance_id) || id=unknown
  # The reason lands in a JSON string and the stack events: no quotes, backslashes or control characters.
  reason=$(printf '%s' "$2" | tr -d '\042\134' | tr -c '[:print:]' ' ' | cut -c 1-240)
  body=$(printf '{"Status":"%s","Reason":"%s","UniqueId":"%s","Data":"%s"}' "$status" "$reason" "$id" "$status")
  if curl -fsS --max-time 10 --retry 3 -X PUT -H 'Content-Type:' --data-binary "$body" "$WAIT_HANDLE_URL" >/dev/null; then
    touch "$STATE_DIR/signalled-$status"
  else
    log "could not signal $status to the stack's wait condition"
  fi
}

# report_if_late WHAT: after BOOT_REPORT_AFTER_SECONDS without serving, tell the stack why (once), and keep going.
report_if_late() {
  [ -f "$STATE_DIR/signalled-SUCCESS" ] && return 0
  local started
  started=$(cat "$STATE_DIR/boot-started")
  if [ $(($(date +%s) - started)) -ge "$BOOT_REPORT_AFTER_SECONDS" ]; then
    signal FAILURE "instance not serving after ${BOOT_REPORT_AFTER_SECONDS}s: $1 (log group ${LOG_GROUP})"
  fi
}

next_delay() { echo $(($1 * 2 > BACKOFF_MAX_SECONDS ? BACKOFF_MAX_SECONDS : $1 * 2)); }

# wait_for WHAT COMMAND...: runs COMMAND until it succeeds, backing off 2 s, 4 s, ... up to BACKOFF_MAX_SECONDS.
wait_for() {
  local what=$1 delay=2 tries=0
  shift
  until "$@"; do
    tries=$((tries + 1))
    log "${what} failed (attempt ${tries}); retrying in ${delay}s"
    report_if_late "${what} keeps failing"
    sleep "$delay"
    delay=$(next_delay "$delay")
  done
}

on_exit() {
  local code=$?
  [ "$code" -eq 0 ] && return 0
  log "bootstrap failed (exit ${code}); systemd runs it again (journalctl -u registry-bootstrap)"
  report_if_late "bootstrap failed with exit ${code}: $(tail -n 2 /var/log/registry-bootstrap.log 2>/dev/null | head -n 1)"
}

# --- the steps ---

install_packages() {
  log "installing docker and the CloudWatch agent"
  wait_for "dnf install" dnf install -y -q docker amazon-cloudwatch-agent
  systemctl enable --now docker
}

start_cloudwatch_agent() {
  log "starting the CloudWatch agent (disk_used_percent, bootstrap log to ${LOG_GROUP})"
  wait_for "CloudWatch agent start" /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "file:${CWAGENT_CONFIG}"
}

# Polls as long as it takes: a fleet deployed before its first user (or with the stack-wide dry run on) starts
# its registries within one poll of sync-htpasswd first publishing the file.
install_htpasswd() {
  log "installing htpasswd from ${HTPASSWD_SOURCE} (polling every ${HTPASSWD_POLL_SECONDS}s until it is published)"
  install -d -m 0755 "$AUTH_DIR"
  local started tries=0
  started=$(date +%s)
  until /usr/local/bin/install-htpasswd.sh "$HTPASSWD_SOURCE" - "$AUTH_DIR"; do
    tries=$((tries + 1))
    if [ $((tries % 30)) -eq 1 ]; then
      log "still no htpasswd after $(($(date +%s) - started))s: add a user under the users parameter path (see the sync-htpasswd runbook); the registry is NOT started"
    fi
    report_if_late "no htpasswd at ${HTPASSWD_SOURCE} (add a user under the users parameter path, then invoke sync-htpasswd)"
    sleep "$HTPASSWD_POLL_SECONDS"
  done
  [ -f "${AUTH_DIR}/htpasswd" ] || { log "${AUTH_DIR}/htpasswd is missing after install"; return 1; }
}

read_http_secret() {
  aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$HTTP_SECRET_ARN" --query SecretString --output text
}

write_http_secret() {
  log "reading the shared http.secret"
  local secret='' delay=2
  until secret=$(read_http_secret); do
    report_if_late "cannot read http.secret ${HTTP_SECRET_ARN}"
    log "reading http.secret failed; retrying in ${delay}s"
    sleep "$delay"
    delay=$(next_delay "$delay")
  done
  if [ "${#secret}" -lt 32 ]; then
    log "http.secret is shorter than 32 characters: the registry is NOT started"
    return 1
  fi
  # distribution reads REGISTRY_HTTP_SECRET over http.secret; the file is root-only and never logged.
  (
    umask 077
    printf 'REGISTRY_HTTP_SECRET=%s\n' "$secret" >"${REGISTRY_DIR}/registry.env"
  )
}

# pull_image: the pinned image; through the ECR cache, log in first (12-hour token), and on a digest the cache does
# not hold yet pull the tag once (ECR fills a cache by tag only), then the digest again: a tag that moved upstream
# to another digest fails here, loudly, and never boots an image other than the pinned one.
pull_image() {
  if [ -n "$ECR_REGISTRY" ]; then
    aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$ECR_REGISTRY" >/dev/null || return 1
    docker pull -q "$REGISTRY_IMAGE" >/dev/null 2>&1 && return 0
    log "${REGISTRY_IMAGE} is not in the pull-through cache yet: pulling ${REGISTRY_IMAGE_WARM} to fill it"
    docker pull -q "$REGISTRY_IMAGE_WARM" >/dev/null || return 1
  fi
  docker pull -q "$REGISTRY_IMAGE" >/dev/null
}

# The registry's own log (every request, with the user) goes to the stack's log group (awslogs driver;
# non-blocking, so a CloudWatch hiccup never stalls requests; `docker logs registry` still works).
start_registry() {
  local id
  id=$(instance_id) || id=unknown
  log "starting ${REGISTRY_IMAGE} (log stream ${id}/registry)"
  wait_for "docker pull" pull_image
  docker rm -f registry >/dev/null 2>&1 || true
  docker run -d --name registry --restart=always --network host \
    --log-driver awslogs --log-opt "awslogs-region=${AWS_REGION}" --log-opt "awslogs-group=${LOG_GROUP}" \
    --log-opt "awslogs-stream=${id}/registry" --log-opt mode=non-blocking --log-opt max-buffer-size=4m \
    --env-file "${REGISTRY_DIR}/registry.env" \
    -v "${REGISTRY_DIR}/config.yml:/etc/docker/registry/config.yml:ro" \
    -v "${AUTH_DIR}:/auth:ro" \
    "$REGISTRY_IMAGE" /etc/docker/registry/config.yml >/dev/null
}

wait_until_serving() {
  local n
  for n in $(seq 60); do
    if curl -fsS -o /dev/null --max-time 2 "$REGISTRY_URL"; then
      log "registry is answering on :5000 (after ${n}s)"
      return 0
    fi
    sleep 1
  done
  log "registry is not answering on :5000 after 60s; last container output:"
  docker logs --tail 5 registry 2>&1 || true
  return 1
}

# Everything that needs a serving registry goes here, after it answers (and before the stack hears SUCCESS).
after_registry_up() {
  # sync-htpasswd may have published a new file (a revoked user) between this boot's fetch and the registry
  # starting, before the group listed this instance: compare with the published sha256 once more.
  /usr/local/bin/install-htpasswd.sh --recheck "$HTPASSWD_SOURCE" "$AUTH_DIR" ||
    log "htpasswd re-check failed; the hourly drift check catches up"
  signal SUCCESS "registry answers on :5000"
}

main() {
  trap on_exit EXIT
  install -d -m 0700 "$STATE_DIR"
  [ -f "$STATE_DIR/boot-started" ] || date +%s >"$STATE_DIR/boot-started"
  install_packages
  start_cloudwatch_agent
  install_htpasswd
  write_http_secret
  start_registry
  wait_until_serving
  after_registry_up
  log "done"
}

main "$@"
