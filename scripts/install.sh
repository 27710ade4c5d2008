#!/usr/bin/env bash
# Installs everything Refrain needs on a fresh machine: system packages, a virtualenv, pinned Python deps.
# Usage: scripts/install.sh [--test]   (--test adds the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg fluidsynth fluid-soundfont-gm espeak-ng libsndfile1)
BREW_PACKAGES=(ffmpeg fluid-synth espeak-ng libsndfile)
if [[ "${1:-}" == "--test" ]]; then  # developer tools: wrk drives the API benchmark (bench/api.sh)
  APT_PACKAGES+=(wrk)
  BREW_PACKAGES+=(wrk)
fi

install_system() {
  if [[ "$(uname -s)" == "Darwin" ]]; then
    command -v brew >/dev/null || { echo "install.sh: Homebrew is required on macOS (https://brew.sh)" >&2; exit 1; }
    brew install "${BREW_PACKAGES[@]}"
    return
  fi
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    local sudo=""; [[ $EUID -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_python() {
  local python="${PYTHON:-python3}"
  [[ -x .venv/bin/python ]] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  if [[ "${1:-}" == "--test" ]]; then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
}

install_system
install_python "${1:-}"
