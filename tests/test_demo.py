"""The README's demo runs to the end and prints the messages a subscriber received."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_broker import MOSQUITTO

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_broker_available() -> None:
    """The demo runs Mosquitto when installed, else amqtt."""
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.importorskip("amqtt", reason="neither Mosquitto nor amqtt is installed")


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **env}, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_demo_on_shared_data_named_by_edge_test_data(data_dir, demo_broker_available, tmp_path):
    data = tmp_path / "elsewhere"
    data.symlink_to(data_dir)  # the demo must read $EDGE_TEST_DATA, not ../shared/data
    out = run(
        [sys.executable, "scripts/demo.py", "--workdir", str(tmp_path / "work")], env={"EDGE_TEST_DATA": str(data)}
    )
    assert f"== data: {data}\n" in out
    # the ten photos of enrolled people (test_device_e2e.expected_events), no stranger
    assert out.count("<- edge/demo/demo-cam/match") == 10, out
    assert "at the shipped operating point" in out
    assert '"state": "online"' in out and '"state": "offline"' in out and "/stats: stats" in out
    assert "== done: 600 frames" in out


def test_demo_sh_without_mosquitto_runs_amqtt_and_leaves_no_temp_folder(tmp_path):
    """Mosquitto absent and apt failing: setup goes on, the demo runs amqtt, removes its temp folder."""
    pytest.importorskip("amqtt", reason="the fallback broker (edge[demo])")
    pytest.importorskip("matplotlib", reason="the sample portrait ships with matplotlib (edge[demo])")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for tool in ("apt-get", "sudo"):
        (stubs / tool).write_text("#!/bin/sh\nexit 100\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    # This interpreter stands in for the venv: setup's pip installs are skipped, the demo runs.
    (venv / "bin" / "python").write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\nexec {sys.executable} "$@"\n')
    for stub in [*stubs.iterdir(), venv / "bin" / "python"]:
        stub.chmod(0o755)
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = run(
        ["scripts/demo.sh", "--sample"],
        env={
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "EDGE_MOSQUITTO": str(tmp_path / "no-mosquitto"),
            "VENV": str(venv),
            "TMPDIR": str(temp),
        },
    )
    assert "going on without Mosquitto" in out
    assert "== broker: amqtt" in out
    assert out.count("<- edge/demo/demo-cam/match: match") == 2, out
    assert '"identity_id": "grace_hopper"' in out
    assert list(temp.glob("edge-demo-*")) == []
