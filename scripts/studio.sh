#!/usr/bin/env bash
# One command for a fresh machine: install everything, then start the local studio at http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
echo "Refrain studio: http://127.0.0.1:8000   (genmusic CLI: .venv/bin/genmusic --help)"
exec .venv/bin/refrain-studio "$@"
