#!/bin/sh
# Build the example's image, occopus-example/tiers:1, from image/ and the host's static
# busybox (Debian package busybox-static). Nothing is pulled from a registry.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "no static busybox at $busybox (apt-get install busybox-static, or set BUSYBOX)" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "$here/image/." "$ctx/"
cp "$busybox" "$ctx/busybox"
docker build -q -t occopus-example/tiers:1 "$ctx"
