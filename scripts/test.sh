#!/usr/bin/env bash
# The whole test suite, on a fresh machine with Rust: finds what the tests need, installs what
# is missing, then runs every test with cargo-nextest. Arguments go to `cargo nextest run`:
#
#   scripts/test.sh                                  # everything
#   scripts/test.sh users::                          # the tests whose name contains users::
#   scripts/test.sh -E 'test(=users::the_seed_walkthrough_gives_the_seed_shapes)'
#
# What the tests need: PostgreSQL's initdb and postgres, redis-server, chromium and chromedriver
# (system packages; installed with apt-get when run as root, otherwise this prints the one
# command that installs them and stops before running anything), and cargo-nextest (installed
# with `cargo install` into ~/.cargo/bin). It starts no server: each test starts the private
# PostgreSQL and Redis it needs and stops them. TEST_DATABASE_URL, when set, points the tests at
# an existing PostgreSQL server instead (one database per test).
set -euo pipefail
cd "$(dirname "$0")/.."

# A program as the tests look for it: on PATH, or (PostgreSQL) in Debian's versioned directory.
find_program() {
    local name=$1 dir
    local IFS=:
    for dir in $PATH /usr/lib/postgresql/*/bin; do
        if [ -f "$dir/$name" ] && [ -x "$dir/$name" ]; then
            return 0
        fi
    done
    return 1
}

# program:Debian package, for everything the suite starts.
required=(initdb:postgresql postgres:postgresql redis-server:redis-server
    chromium:chromium chromedriver:chromium-driver)
missing=()
for entry in "${required[@]}"; do
    program=${entry%%:*} package=${entry#*:}
    if ! find_program "$program" && [[ " ${missing[*]} " != *" $package "* ]]; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "--- installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "The tests need programs this machine does not have. Install them with:" >&2
        echo >&2
        echo "    sudo apt-get install -y ${missing[*]}" >&2
        echo >&2
        echo "(other systems: the packages holding ${missing[*]}), then run $0 again." >&2
        exit 1
    fi
fi

if ! command -v cargo >/dev/null; then
    echo "cargo is not installed: install Rust (https://rustup.rs), then run $0 again." >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "--- installing cargo-nextest (a few minutes, once)"
    cargo install --locked --quiet cargo-nextest
fi

exec cargo nextest run --locked "$@"
