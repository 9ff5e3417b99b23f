#!/bin/bash
# placeholder: replaced by the sync-htpasswd branch
# Contract (PREAMBLE): install-htpasswd.sh SOURCE SHA256 AUTH_DIR | install-htpasswd.sh --report - AUTH_DIR
set -euo pipefail
source_url=${1:?usage: install-htpasswd.sh SOURCE SHA256 AUTH_DIR}
sha=${2:?usage: install-htpasswd.sh SOURCE SHA256 AUTH_DIR}
auth_dir=${3:?usage: install-htpasswd.sh SOURCE SHA256 AUTH_DIR}
if [ "$source_url" = "--report" ]; then
  if [ -f "$auth_dir/htpasswd" ]; then
    echo "current sha256=$(sha256sum "$auth_dir/htpasswd" | cut -d' ' -f1)"
  else
    echo "current sha256=none"
  fi
  exit 0
fi
tmp=$(mktemp "$auth_dir/.htpasswd.XXXXXX")
trap 'rm -f "$tmp"' EXIT
case "$source_url" in
  s3://*) aws s3 cp --quiet "$source_url" "$tmp" ;;
  http://* | https://*) curl -fsS -o "$tmp" "$source_url" ;;
  *) echo "unsupported source: $source_url" >&2; exit 2 ;;
esac
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$sha" != "-" ] && [ "$sha" != "$got" ]; then
  echo "sha256 mismatch: expected $sha, got $got" >&2
  exit 1
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$auth_dir/htpasswd"
trap - EXIT
echo "installed sha256=$got"
