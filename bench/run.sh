#!/usr/bin/env bash
# Runs the benchmarks (after scripts/install.sh). Results are recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m bench.pipeline "$@"
