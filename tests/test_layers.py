"""The layers written as import-linter contracts in pyproject.toml ([tool.importlinter]) hold, and a
wrong import, relative ones included, breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (the `test` extra)")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the repository's contracts on the `edge` package found under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_hold():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # a relative import from evaluation into trial: the three central packages stay apart
        ("central/evaluation/dataset.py", "from ..trial import terms", "evaluation, fleet and trial stay apart"),
        # the device reaching for an off-device tool
        ("device/loop.py", "from ..central.fleet import folder", "the device never imports off-device code"),
        ("vision/detector.py", "import edge.gallery", "vision is pure compute"),
        ("central/trial/store.py", "from ...console import users", "the console sits on central"),
        # one command reaching into another instead of the package both should call
        ("commands/calibrate.py", "from .eval import watchlist_plan", "commands are wiring"),
    ],
)
def test_a_wrong_import_breaks_its_contract(tmp_path, module, line, contract):
    copy = tmp_path / "edge"
    shutil.copytree(REPO / "edge", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    assert target.is_file(), f"{module} moved: choose another module for this check"
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
