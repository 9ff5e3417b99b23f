#!/bin/bash
# Boots one registry instance (Amazon Linux 2023). Installed by the user data as
# /usr/local/sbin/registry-bootstrap.sh and run once at first boot; safe to run again.
#
# Order matters: the registry must never start without an htpasswd file (distribution would create a
# `docker` user with a random password) nor without the fleet's shared http.secret (uploads that move
# between instances would fail with BLOB_UPLOAD_INVALID).
set -euo pipefail

set -a
# shellcheck source=/dev/null
. /etc/registry-fleet/fleet.env
set +a

: "${AWS_REGION:?}" "${REGISTRY_IMAGE:?}" "${HTTP_SECRET_ARN:?}" "${HTPASSWD_SOURCE:?}" "${HTPASSWD_WAIT_SECONDS:?}"
AUTH_DIR=/etc/docker/registry/auth
REGISTRY_DIR=/etc/docker/registry
CWAGENT_CONFIG=/opt/aws/amazon-cloudwatch-agent/etc/registry-fleet.json

log() { echo "registry-bootstrap: $*"; }

# retry ATTEMPTS DELAY_SECONDS COMMAND...: runs COMMAND until it succeeds, at most ATTEMPTS times.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if [ "$n" -ge "$attempts" ]; then
      return 1
    fi
    n=$((n + 1))
    sleep "$delay"
  done
}

log "installing docker and the CloudWatch agent"
retry 5 10 dnf install -y -q docker amazon-cloudwatch-agent
systemctl enable --now docker

log "starting the CloudWatch agent (disk_used_percent)"
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "file:${CWAGENT_CONFIG}"

# HTPASSWD_WAIT_SECONDS=0 (the default) waits as long as it takes: a fleet deployed before its first user (or
# with the stack-wide dry run on) starts its registries the moment sync-htpasswd first publishes the file.
log "installing htpasswd from ${HTPASSWD_SOURCE} (waiting for it to be published; limit ${HTPASSWD_WAIT_SECONDS}s, 0 = none)"
install -d -m 0755 "$AUTH_DIR"
started=$(date +%s)
tries=0
until /usr/local/bin/install-htpasswd.sh "$HTPASSWD_SOURCE" - "$AUTH_DIR"; do
  waited=$(($(date +%s) - started))
  if [ "$HTPASSWD_WAIT_SECONDS" -gt 0 ] && [ "$waited" -ge "$HTPASSWD_WAIT_SECONDS" ]; then
    log "no htpasswd after ${HTPASSWD_WAIT_SECONDS}s: the registry is NOT started (publish users, then replace this instance)"
    exit 1
  fi
  tries=$((tries + 1))
  if [ $((tries % 20)) -eq 1 ]; then
    log "still no htpasswd after ${waited}s: add a user under the users parameter path (see the sync-htpasswd runbook)"
  fi
  sleep 15
done
if [ ! -f "${AUTH_DIR}/htpasswd" ]; then
  log "${AUTH_DIR}/htpasswd is missing after install: the registry is NOT started"
  exit 1
fi

log "reading the shared http.secret"
secret=$(retry 5 5 aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$HTTP_SECRET_ARN" \
  --query SecretString --output text)
if [ "${#secret}" -lt 32 ]; then
  log "http.secret is shorter than 32 characters: the registry is NOT started"
  exit 1
fi
# distribution reads REGISTRY_HTTP_SECRET over http.secret; the file is root-only and never logged.
(
  umask 077
  printf 'REGISTRY_HTTP_SECRET=%s\n' "$secret" >"${REGISTRY_DIR}/registry.env"
)
unset secret

log "starting ${REGISTRY_IMAGE}"
retry 5 10 docker pull -q "$REGISTRY_IMAGE"
docker rm -f registry >/dev/null 2>&1 || true
docker run -d --name registry --restart=always --network host \
  --log-driver json-file --log-opt max-size=50m --log-opt max-file=5 \
  --env-file "${REGISTRY_DIR}/registry.env" \
  -v "${REGISTRY_DIR}/config.yml:/etc/docker/registry/config.yml:ro" \
  -v "${AUTH_DIR}:/auth:ro" \
  "$REGISTRY_IMAGE" /etc/docker/registry/config.yml

if retry 30 2 curl -fsS -o /dev/null http://127.0.0.1:5000/; then
  log "registry is answering on :5000"
else
  log "registry is not answering on :5000 yet; see: docker logs registry"
fi
