#!/bin/sh
# As the official redis image's entrypoint: options or a .conf file alone run redis-server;
# anything else runs as given. Files it writes are private to its user.
# The official image is built with protected mode off by default (a container's port is only
# reachable where it is published); Debian's redis-server has it on, so it is turned off here
# unless the arguments say otherwise (a configuration file must stay the first argument).
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    if [ $# -gt 0 ] && { [ "${1#-}" = "$1" ] || [ "$1" = - ]; }; then
        conf=$1
        shift
        set -- redis-server "$conf" --protected-mode no "$@"
    else
        set -- redis-server --protected-mode no "$@"
    fi
fi
umask 0077
exec "$@"
