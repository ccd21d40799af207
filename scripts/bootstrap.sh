#!/usr/bin/env bash
# Installs what recsys needs on a fresh Debian machine: system packages (when missing),
# then .venv with the project. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  festival festvox-kallpc16k festvox-kdlpc16k festvox-italp16k festvox-itapc16k
  festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph
  fluidsynth fluid-soundfont-gm ffmpeg sox chromium
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  # torch first, pinned, so no dependency can pull a multi-GB CUDA build
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  # one process compiles librosa's cached kernels; concurrent first compiles corrupt them
  .venv/bin/python scripts/warm_numba.py
  touch "$stamp"
fi
