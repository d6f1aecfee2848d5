"""In CI (NO_SKIPPED_TESTS=1) a skipped test fails with its reason; elsewhere it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(("no_skips", "expected"), [("1", "1 failed"), ("0", "1 skipped")])
def test_a_skip_fails_only_in_ci(tmp_path, no_skips, expected):
    (tmp_path / "test_needs_a_broker.py").write_text(
        "import pytest\n\ndef test_it():\n    pytest.skip('no broker here')\n"
    )
    env = {**os.environ, "NO_SKIPPED_TESTS": no_skips, "PYTHONPATH": str(TESTS)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "support_ci", "-q", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert expected in result.stdout, result.stdout[-2000:]
    assert "no broker here" in result.stdout
