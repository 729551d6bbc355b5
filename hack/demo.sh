#!/usr/bin/env bash
# make demo: lastcall's main scenario, end to end, on a private local control
# plane with a real Flagger (see docs/e2e.md). Everything it starts stops
# when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./hack/demo "$@"
