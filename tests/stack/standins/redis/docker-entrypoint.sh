#!/bin/sh
# `redis-server ARGS`: prepend --bind 0.0.0.0 --protected-mode no (Debian's defaults bind the
# loopback only) unless ARGS start with a config file, and run as the redis user in /data.
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    case "${1:-}" in
        *.conf) ;;
        *) set -- --bind 0.0.0.0 --protected-mode no "$@" ;;
    esac
    chown -R redis:redis /data 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups -- redis-server "$@"
fi
exec "$@"
