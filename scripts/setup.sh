#!/usr/bin/env bash
# Set up everything this checkout needs on Debian/Ubuntu with Python 3.10-3.12:
# Mosquitto (the test and demo broker) and a virtualenv in .venv with the package installed.
#   scripts/setup.sh            # device runtime + tests + reference pipeline
#   EXTRAS=litert scripts/setup.sh   # device runtime only
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-litert,test,demo}
PYTHON=${PYTHON:-python3}

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "== installing mosquitto (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "== installing edge[$EXTRAS] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
