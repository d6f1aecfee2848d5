#!/usr/bin/env bash
# Set up everything this checkout needs on Debian/Ubuntu with Python 3.10-3.12:
# Mosquitto (the test and demo broker) and a virtualenv in .venv with the package installed.
#   scripts/setup.sh            # device runtime + tests + reference pipeline
#   EXTRAS=litert scripts/setup.sh   # device runtime only
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-litert,test,demo}
PYTHON=${PYTHON:-python3}

# Debian's python3 comes without venv (python3-venv) and without Mosquitto: install what is missing.
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
"$PYTHON" -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "== installing ${missing[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "== installing edge[$EXTRAS] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
