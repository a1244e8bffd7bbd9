#!/bin/sh
# Store tier: serves one value (env STORE_VALUE) at http://<ip>:8000/value.
mkdir -p /tmp/store
printf '%s\n' "${STORE_VALUE:-empty}" > /tmp/store/value
httpd -f -p 8000 -h /tmp/store &
trap 'kill $!; exit 0' TERM
wait
