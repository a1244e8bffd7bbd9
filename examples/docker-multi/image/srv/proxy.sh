#!/bin/sh
# Proxy tier: http://<ip>:80/cgi-bin/item forwards to the API (env API_ADDR) and wraps
# its answer.
httpd -f -p 80 -h /srv/proxy &
trap 'kill $!; exit 0' TERM
wait
