#!/bin/bash
# placeholder: replaced by the purge-disk-volumes branch
# Contract (PREAMBLE): prune-docker.sh [--max-log-mb N]; last line {"freedBytes":N,"usedPercentBefore":N,"usedPercentAfter":N}
set -euo pipefail
max_log_mb=100
if [ "${1:-}" = "--max-log-mb" ]; then
  max_log_mb=${2:?--max-log-mb needs a number}
fi
used() { df --output=used -B1 / | tail -n 1 | tr -d ' '; }
percent() { df --output=pcent / | tail -n 1 | tr -dc '0-9'; }
before_bytes=$(used)
before_pct=$(percent)
docker image prune -af >/dev/null
docker volume prune -f >/dev/null
docker builder prune -af >/dev/null 2>&1 || true
find /var/lib/docker/containers -name '*-json.log' -size +"${max_log_mb}M" -exec truncate -s 0 {} + 2>/dev/null || true
after_bytes=$(used)
after_pct=$(percent)
freed=$((before_bytes - after_bytes))
if [ "$freed" -lt 0 ]; then freed=0; fi
printf '{"freedBytes":%d,"usedPercentBefore":%d,"usedPercentAfter":%d}\n' "$freed" "$before_pct" "$after_pct"
