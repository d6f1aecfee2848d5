#!/usr/bin/env bash
# Set everything up (scripts/setup.sh: Mosquitto, .venv) and run the demo (scripts/demo.py):
# a broker, a gallery enrolled from photos, the loop over a video, the messages received.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-litert,demo} scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
