#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite; extra arguments go to pytest.
# A run that collects no test fails: "no tests ran" must never pass for green. The 15 slowest
# tests are listed at the end (--durations). Tests run on TEST_WORKERS pytest-xdist workers (default:
# twice the cores, measured fastest on 2 cores: most tests wait on a broker or a device process);
# TEST_WORKERS=0 runs them in this process, one after another.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
WORKERS=${TEST_WORKERS:-$(($(nproc) * 2))}
.venv/bin/python -m pytest --durations=15 -n "$WORKERS" --dist loadgroup "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
