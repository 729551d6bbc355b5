#!/usr/bin/env bash
# make demo: runs lastcall's scenario on the local dev cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./cmd/lastcall dev status >/dev/null 2>&1 || go run ./cmd/lastcall dev up
exec go run ./hack/demo "$@"
