#!/bin/sh
echo starting
{% if variables.password %}
echo "password set"
