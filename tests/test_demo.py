"""The README's demo runs to the end and prints the messages a subscriber received."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_broker import MOSQUITTO

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


@pytest.fixture
def demo_broker_available() -> None:
    """The demo runs Mosquitto when installed, else amqtt."""
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.importorskip("amqtt", reason="neither Mosquitto nor amqtt is installed")


def run_demo(*args: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--workdir", str(tmp_path), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_demo_on_shared_data(data_dir, demo_broker_available, tmp_path):
    out = run_demo(tmp_path=tmp_path)
    assert out.count("<- edge/demo/demo-cam/match") == 10, out
    assert '"state": "online"' in out and '"state": "offline"' in out and "/stats: stats" in out
    assert "== done: 600 frames" in out


def test_demo_without_shared_data(demo_broker_available, tmp_path):
    pytest.importorskip("matplotlib", reason="the sample portrait ships with matplotlib (edge[demo])")
    out = run_demo("--sample", tmp_path=tmp_path)
    assert out.count("<- edge/demo/demo-cam/match: match") == 2, out
    assert '"identity_id": "grace_hopper"' in out
