#!/usr/bin/env bash
# Lints the forge workflow (.github/workflows/) with actionlint, built once from its Go module
# into the user's cache, so a workflow nobody runs here cannot rot unseen.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v1.7.12
BIN="${XDG_CACHE_HOME:-$HOME/.cache}/statelab/tools/actionlint-$VERSION"
if [ ! -x "$BIN/actionlint" ]; then
    command -v go >/dev/null || { echo "actionlint is built with Go: install Go first" >&2; exit 1; }
    echo "building actionlint $VERSION (once)"
    mkdir -p "$BIN"
    GOBIN="$BIN" go install "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
fi
# actionlint also runs shellcheck on every `run:` block when shellcheck is installed.
command -v shellcheck >/dev/null || echo "note: shellcheck is not installed; run: blocks are not checked"
"$BIN/actionlint" .github/workflows/*.yml
echo "workflow: actionlint $VERSION found nothing"
