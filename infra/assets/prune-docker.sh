#!/usr/bin/env bash
# Frees disk space on a registry instance (run by the prune SSM document; owned by purge-disk-volumes).
#
#   prune-docker.sh [--max-log-mb N]
#
# Removes docker images no container uses, dangling ANONYMOUS volumes and the build cache, and truncates
# container json logs larger than N MiB (default 100). It never stops, kills or removes a container (the running
# `registry` container and its bind mounts are left alone), never removes a named volume and never removes a
# volume any container (running or stopped) still references.
#
# Output is kept short on purpose: SSM returns only the first 24,000 characters of stdout. The LAST line is one
# JSON object: {"freedBytes":N,"usedPercentBefore":N,"usedPercentAfter":N}. The exit status is non-zero when a
# step failed (the JSON line is still printed), or 2 on bad usage / docker not answering.
#
# Environment (for tests): DOCKER_ROOT (default /var/lib/docker), PRUNE_DISK_PATH (filesystem measured, default /).
set -euo pipefail

max_log_mb=100
usage() { echo "usage: prune-docker.sh [--max-log-mb N]" >&2; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --max-log-mb)
      [ "$#" -ge 2 ] || { usage; exit 2; }
      max_log_mb="$2"
      shift 2
      ;;
    --max-log-mb=*)
      max_log_mb="${1#*=}"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "prune-docker: unknown argument: $1" >&2
      usage
      exit 2
      ;;
  esac
done

case "$max_log_mb" in
  '' | *[!0-9]*)
    echo "prune-docker: --max-log-mb must be a whole number of MiB, got '$max_log_mb'" >&2
    exit 2
    ;;
esac
if [ "$max_log_mb" -lt 1 ]; then
  echo "prune-docker: --max-log-mb must be at least 1" >&2
  exit 2
fi

docker_root="${DOCKER_ROOT:-/var/lib/docker}"
disk_path="${PRUNE_DISK_PATH:-/}"

# Used bytes and used percent of the filesystem holding $disk_path (POSIX df output, 1024-byte blocks).
used_kib() { df -Pk "$disk_path" | awk 'NR == 2 { print $3 }'; }
used_percent() { df -Pk "$disk_path" | awk 'NR == 2 { sub(/%/, "", $5); print $5 }'; }

if ! docker info >/dev/null 2>&1; then
  echo "prune-docker: docker is not answering (docker info failed)" >&2
  exit 2
fi

before_kib="$(used_kib)"
percent_before="$(used_percent)"
failures=0

step() {
  # step NAME COMMAND...: run a docker step, print one short line, count a failure without stopping.
  local name="$1"
  shift
  if "$@" >/dev/null 2>&1; then
    echo "ok: $name"
  else
    echo "failed: $name" >&2
    failures=$((failures + 1))
  fi
}

# Images not used by any container, running or stopped (the registry's own image is in use, so it stays).
step "image prune" docker image prune --all --force
step "builder prune" docker builder prune --all --force

# Anonymous volumes only: dangling (no container references them) AND an anonymous name (64 hex characters).
# Named volumes are never removed, whatever their state; `docker volume prune` is not used because before
# Docker 23 it removed unused named volumes too.
removed_volumes=0
if dangling="$(docker volume ls --quiet --filter dangling=true 2>/dev/null)"; then
  for volume in $dangling; do
    if printf '%s\n' "$volume" | grep -Eq '^[0-9a-f]{64}$'; then
      if docker volume rm "$volume" >/dev/null 2>&1; then
        removed_volumes=$((removed_volumes + 1))
      else
        echo "failed: volume rm $volume" >&2
        failures=$((failures + 1))
      fi
    fi
  done
  echo "ok: removed $removed_volumes anonymous volume(s)"
else
  echo "failed: volume ls" >&2
  failures=$((failures + 1))
fi

# Container json logs over the limit are truncated in place (docker keeps writing to the same file).
truncated_logs=0
limit_bytes=$((max_log_mb * 1024 * 1024))
if [ -d "$docker_root/containers" ]; then
  while IFS= read -r log; do
    [ -n "$log" ] || continue
    if truncate -s 0 "$log"; then
      truncated_logs=$((truncated_logs + 1))
    else
      failures=$((failures + 1))
    fi
  done <<EOF_LOGS
$(find "$docker_root/containers" -mindepth 2 -maxdepth 2 -type f -name '*-json.log' -size "+${limit_bytes}c" 2>/dev/null)
EOF_LOGS
fi
echo "ok: truncated $truncated_logs log(s) over ${max_log_mb} MiB"

after_kib="$(used_kib)"
percent_after="$(used_percent)"
freed_kib=$((before_kib - after_kib))
if [ "$freed_kib" -lt 0 ]; then freed_kib=0; fi

printf '{"freedBytes":%d,"usedPercentBefore":%d,"usedPercentAfter":%d}\n' "$((freed_kib * 1024))" "$percent_before" "$percent_after"
if [ "$failures" -gt 0 ]; then exit 1; fi
