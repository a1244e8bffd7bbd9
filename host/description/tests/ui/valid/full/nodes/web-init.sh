#!/bin/sh
echo "{{ variables.message }}" > /etc/motd
