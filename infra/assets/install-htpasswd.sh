#!/usr/bin/env bash
# Installs the registry's htpasswd file, atomically, without restarting the registry.
#
#   install-htpasswd.sh SOURCE SHA256 AUTH_DIR
#   install-htpasswd.sh --report [SHA256] AUTH_DIR
#   install-htpasswd.sh --recheck SOURCE AUTH_DIR
#
# SOURCE   s3://bucket/key (downloaded with `aws s3 cp`) or an http(s):// URL (downloaded with `curl -fsS`).
# SHA256   64 lower-case hex digits the download must match, or `-` to skip the check.
# AUTH_DIR the auth DIRECTORY bind-mounted into the registry container (/etc/docker/registry/auth).
#
# The file is written to a temp file inside AUTH_DIR, checked (sha256, every line `user:bcrypt`), chmod 0600
# (the registry reads it as root: no other user on the instance gets the hashes),
# given an mtime strictly newer than the old file's (the registry re-reads the file only when its mtime
# changes; coarse timestamps could otherwise keep it equal), and renamed over AUTH_DIR/htpasswd. Prints
# `previous sha256=<hex|none>` then, as its last line, `installed sha256=<hex>`. With --report it only prints
# `current sha256=<hex|none>`. Any failure exits non-zero and leaves the old file in place. Never prints the
# file's content. Shared by the instance boot script and the htpasswd SSM document.
#
# --recheck reads the sha256 the published object carries in its metadata (`aws s3api head-object` for s3://,
# the x-amz-meta-sha256 header of a GET for http(s)) and prints `published sha256=<hex>`; if the served file
# differs it installs the object verified against that sha256 (as above), else prints `current sha256=<hex>`.
# The boot script runs it once the registry is up: the file it fetched at boot may predate a publish that
# sync-htpasswd made while the instance was still Pending, and so not yet sent an install.
set -euo pipefail
umask 022

usage() {
  echo "usage: $0 SOURCE SHA256 AUTH_DIR | $0 --report [SHA256] AUTH_DIR | $0 --recheck SOURCE AUTH_DIR" >&2
  exit 2
}
die() {
  echo "install-htpasswd: $*" >&2
  exit 1
}
file_sha() {
  sha256sum "$1" | cut -d ' ' -f 1
}
current_sha() {
  if [ -f "$1/htpasswd" ]; then file_sha "$1/htpasswd"; else echo none; fi
}

# The sha256 in the published object's metadata (what sync-htpasswd sets; empty or None if there is none).
published_sha() {
  case "$1" in
    s3://*)
      local path=${1#s3://}
      aws s3api head-object --bucket "${path%%/*}" --key "${path#*/}" --query Metadata.sha256 --output text
      ;;
    http://* | https://*)
      curl -fsS --retry 3 --max-time 60 -o /dev/null -D - "$1" | tr -d '\r' |
        awk 'tolower($1) == "x-amz-meta-sha256:" { print $2 }'
      ;;
    *) die "SOURCE must be s3://bucket/key or an http(s):// URL" ;;
  esac
}

if [ "${1:-}" = "--recheck" ]; then
  [ "$#" -eq 3 ] || usage
  [ -d "$3" ] || die "AUTH_DIR $3 is not a directory"
  published=$(published_sha "$2") || die "could not read the published sha256 of $2; file kept"
  [[ "$published" =~ ^[0-9a-f]{64}$ ]] || die "the published object has no sha256 metadata (got \"${published:0:80}\"); file kept"
  echo "published sha256=$published"
  if [ "$(current_sha "$3")" = "$published" ]; then
    echo "current sha256=$published"
    exit 0
  fi
  set -- "$2" "$published" "$3" # install the published object, verified against its metadata
fi

if [ "${1:-}" = "--report" ]; then
  { [ "$#" -eq 2 ] || [ "$#" -eq 3 ]; } || usage
  auth_dir="${!#}"
  [ -d "$auth_dir" ] || die "AUTH_DIR $auth_dir is not a directory"
  echo "current sha256=$(current_sha "$auth_dir")"
  exit 0
fi

[ "$#" -eq 3 ] || usage
source_url=$1
want=$2
auth_dir=$3
[ -d "$auth_dir" ] || die "AUTH_DIR $auth_dir is not a directory"
if [ "$want" != "-" ] && ! [[ "$want" =~ ^[0-9a-f]{64}$ ]]; then
  die "SHA256 must be 64 lower-case hex digits or -"
fi

tmp=$(mktemp "$auth_dir/.htpasswd.XXXXXX")
trap 'rm -f "$tmp"' EXIT

case "$source_url" in
  s3://*) aws s3 cp --only-show-errors "$source_url" "$tmp" >&2 || die "download of $source_url failed (old file kept)" ;;
  http://* | https://*) curl -fsS --retry 3 --max-time 60 -o "$tmp" "$source_url" || die "download failed (old file kept)" ;;
  *) die "SOURCE must be s3://bucket/key or an http(s):// URL" ;;
esac

got=$(file_sha "$tmp")
if [ "$want" != "-" ] && [ "$got" != "$want" ]; then
  die "sha256 mismatch: downloaded $got, expected $want (old file kept)"
fi
# The registry rejects the whole file on one malformed line; an empty file is allowed (everyone gets 401).
# shellcheck disable=SC2016 # the $ signs are literal: a bcrypt hash starts $2y$NN$
bad=$(grep -cvE '^[^:#[:space:]][^:[:space:]]*:\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$' "$tmp" || true)
[ "$bad" -eq 0 ] || die "$bad line(s) are not user:bcrypt-hash (old file kept)"

chmod 0600 "$tmp" # root-only: the registry (root in its container) is the only reader
previous=$(current_sha "$auth_dir")
if [ -f "$auth_dir/htpasswd" ]; then
  old_mtime=$(stat -c %Y "$auth_dir/htpasswd")
  new_mtime=$(stat -c %Y "$tmp")
  if [ "$new_mtime" -le "$old_mtime" ]; then
    touch -d "@$((old_mtime + 1))" "$tmp"
  fi
fi
mv -f "$tmp" "$auth_dir/htpasswd"
trap - EXIT

echo "previous sha256=$previous"
echo "installed sha256=$got"
