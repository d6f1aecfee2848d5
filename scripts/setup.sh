#!/usr/bin/env bash
# Set up everything this checkout needs on Debian/Ubuntu with Python 3.10-3.12:
# Mosquitto (the test and demo broker) and a virtualenv with the package installed; PostgreSQL and
# Chromium when apt can install them (field-trial tests: a throwaway server, the HTML report; they skip without).
#   scripts/setup.sh                  # device runtime + tests + reference pipeline + demo + central tools + console
#   EXTRAS=litert scripts/setup.sh    # device runtime only
# MOSQUITTO_REQUIRED=0: go on without Mosquitto when it cannot be installed (the demo then uses
# amqtt). EDGE_MOSQUITTO: the mosquitto binary (default: on PATH, else /usr/sbin/mosquitto).
# VENV: where the virtualenv goes (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-litert,test,demo,central,console}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
MOSQUITTO_REQUIRED=${MOSQUITTO_REQUIRED:-1}

have_mosquitto() { [ -x "${EDGE_MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}" ]; }
have_venv() { "$PYTHON" -c "import ensurepip" 2>/dev/null; }
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

# Debian's python3 comes without venv (python3-venv) and without Mosquitto: install what is missing.
missing=()
have_mosquitto || missing+=(mosquitto)
have_venv || missing+=(python3-venv)
have_postgres || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "== installing ${missing[*]} (apt)"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    echo "== could not install ${missing[*]} with apt" >&2
  have_venv || { echo "scripts/setup.sh: $PYTHON has no venv module: install python3-venv" >&2; exit 1; }
  if ! have_mosquitto; then
    if [ "$MOSQUITTO_REQUIRED" != 0 ]; then
      echo "scripts/setup.sh: Mosquitto is missing: install it (apt-get install mosquitto)" >&2
      exit 1
    fi
    echo "== going on without Mosquitto"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "== installing edge[$EXTRAS] into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
