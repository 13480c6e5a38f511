#!/bin/sh
# As the official curlimages/curl entrypoint: options alone run curl; anything else runs as given.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- curl "$@"
fi
exec "$@"
