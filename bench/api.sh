#!/usr/bin/env bash
# API load benchmark (issue 5): 200 polling clients + 20 submissions/s against one API process.
# Needs the local PostgreSQL (database `test`) and Redis, as the tests do. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m bench.api_load "$@"
