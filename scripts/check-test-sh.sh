#!/usr/bin/env bash
# Shows what scripts/test.sh does for a newcomer without root on a machine that lacks the test
# programs: it prints the one command that installs them all and stops, running no test.
# Needs root (to hide the installed programs in a private mount namespace and to switch user).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: it hides the installed programs with bind mounts" >&2; exit 1; }
command -v unshare >/dev/null || { echo "needs unshare (util-linux)" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/empty"
cp -r scripts "$scratch/"            # a copy the unprivileged user can read
chmod -R a+rX "$scratch"

# In a private mount namespace: every program the tests need replaced by nothing, then the
# README's test command run as `nobody`.
set +e
output=$(unshare --mount --propagation private bash -c '
    set -e
    scratch=$1
    for program in redis-server chromium chromedriver initdb postgres; do
        for path in $(type -ap "$program"); do mount --bind /dev/null "$path"; done
    done
    [ -d /usr/lib/postgresql ] && mount --bind "$scratch/empty" /usr/lib/postgresql
    cd "$scratch"
    setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/usr/local/bin:/usr/bin:/bin \
        HOME=/nonexistent bash scripts/test.sh
' _ "$scratch" 2>&1)
status=$?
set -e
echo "$output"
fail() { echo "FAILED: $*" >&2; exit 1; }
[ "$status" -ne 0 ] || fail "scripts/test.sh exited 0 without the programs it needs"
expected="sudo apt-get install -y postgresql redis-server chromium chromium-driver"
grep -qxF "    $expected" <<<"$output" || fail "the single install command was not printed: $expected"
! grep -qE "Compiling|Starting|nextest" <<<"$output" || fail "it went on to build or run tests"
echo "ok: exit $status, printed the one install command, ran nothing"
