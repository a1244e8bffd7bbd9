#!/bin/sh
# API tier: http://<ip>:8080/cgi-bin/item answers JSON built from the store's value
# (the store's address comes in env STORE_ADDR).
httpd -f -p 8080 -h /srv/api &
trap 'kill $!; exit 0' TERM
wait
