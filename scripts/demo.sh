#!/usr/bin/env bash
# Set everything up (scripts/setup.sh: Mosquitto, .venv) and run the demo (scripts/demo.py):
# a broker, a gallery enrolled from photos, the loop over a video, the messages received.
# Mosquitto is optional here: when it cannot be installed the demo runs amqtt instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-litert,demo} MOSQUITTO_REQUIRED=0 scripts/setup.sh
exec "$VENV/bin/python" scripts/demo.py "$@"
