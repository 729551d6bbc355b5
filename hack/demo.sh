#!/usr/bin/env bash
# make demo: runs lastcall's main scenario on the local dev cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/lastcall demo "$@"
