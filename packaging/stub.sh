#!/bin/sh
# jobrunner @VERSION@, one file: this script, then a gzipped tar of a frozen bundle (a Python
# interpreter with jobrunner, its dependencies and the standard library). The first run on
# a machine unpacks it once into a cache folder of the user's own; every run after that
# only checks the folder is there and executes the bundle (no unpacking per start).
set -eu
id=@ID@
root="${JOBRUNNER_CACHE:-${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}}"
if [ -z "$root" ]; then
    root="${TMPDIR:-/tmp}/jobrunner-cache-$(id -u)"
fi
root="$root/jobrunner"
here="$root/dist-$id"
if [ ! -x "$here/jobrunner" ]; then
    mkdir -p -m 700 "$root"
    # a folder another user made (a shared /tmp) is never trusted with our program
    if [ -L "$root" ] || [ ! -O "$root" ]; then
        echo "jobrunner: $root: not a folder of this user's own; set JOBRUNNER_CACHE" >&2
        exit 2
    fi
    tmp=$(mktemp -d "$root/.unpacking.XXXXXX")
    tail -c +@OFFSET@ "$0" | tar -xzf - -C "$tmp"
    # another first run may have finished meanwhile: keep whichever came first
    mv -T "$tmp" "$here" 2>/dev/null || rm -rf "$tmp"
fi
exec "$here/jobrunner" "$@"
exit 1
