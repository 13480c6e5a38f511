#!/bin/sh
# As the official redis image's entrypoint: options or a .conf file alone run redis-server;
# anything else runs as given. Files it writes are private to its user.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
umask 0077
exec "$@"
