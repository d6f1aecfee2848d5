"""What the central tools print when the broker cannot be used, and how `edge collect` stops.

Each failure is one line that says what is wrong and what to do, with no paho ERROR beside it
(issue 18, item 8); a tool that worked prints no ERROR; SIGINT and SIGTERM end `edge collect`
at any point, with the counts and exit status 0. Real Mosquitto brokers throughout: a plain one
and the fleet's TLS listener (`edge fleet broker-config`).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from support_broker import free_port
from support_fleet import fleet_broker
from test_trial_report import store  # noqa: F401 (a fixture: a trial database with a day of traffic)

from edge.central.fleet.client import publish
from edge.central.fleet.folder import FleetDir
from edge.cli import main
from edge.link import MqttOptions

PAHO = "edge.link.mqtt.paho"


@pytest.fixture
def fleet(tmp_path) -> FleetDir:
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    return FleetDir(tmp_path / "fleet")


@pytest.fixture
def tls_port(broker_factory, fleet, tmp_path) -> int:
    """The devices' port of the fleet's broker: TLS with client certificates and the ACL."""
    port = free_port()
    fleet_broker(broker_factory, fleet.root, tmp_path / "broker", port)
    return port


def edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=timeout)


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_central_tools_leave_the_broker_without_a_paho_error(broker, fleet, caplog):
    """paho's network thread logged "Client is not connected" at ERROR after about one clean
    disconnect in twenty-five; every connection of `edge fleet ...` ends with one."""
    with caplog.at_level(logging.DEBUG, logger=PAHO):
        for _ in range(300):
            publish(MqttOptions.from_url(broker.url), "edge/test/cam-1/config/set", "{}")
        assert main(["fleet", "status", "--fleet", str(fleet.root), "--broker", broker.url]) == 0
    assert errors(caplog) == []


@pytest.mark.parametrize(
    ("scheme", "host", "advice"),
    [("mqtt", "127.0.0.1", "use mqtts://"), ("mqtts", "localhost", "use mqtt://")],
)
def test_a_scheme_that_does_not_match_the_port_is_one_line_saying_which_to_use(
    broker, tls_port, fleet, scheme, host, advice, capsys, caplog
):
    """mqtt:// to the TLS listener, mqtts:// to a plain one: refused at once, not retried."""
    port = tls_port if scheme == "mqtt" else broker.port
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG, logger=PAHO):
        code = main(["fleet", "status", "--fleet", str(fleet.root), "--broker", f"{scheme}://{host}:{port}"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1 and advice in err and f"{host}:{port}" in err, err
    assert errors(caplog) == []


def test_collect_on_mqtts_without_the_fleet_says_it_needs_the_fleet_certificate(tls_port, tmp_path):
    done = edge("collect", "--broker", f"mqtts://localhost:{tls_port}", "--db", f"sqlite:///{tmp_path / 't.db'}")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "--fleet" in done.stderr and "certificate" in done.stderr, done.stderr
    assert "ERROR" not in done.stderr


@pytest.fixture
def silent_host() -> Iterator[tuple[int, threading.Event]]:
    """A port that accepts connections and never answers (a hung broker); the event is set once
    a client has connected."""
    server = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        try:
            accepted.append(server.accept()[0])
            connected.set()
        except OSError:  # closed at teardown
            pass

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], connected
    server.close()
    for s in accepted:
        s.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_collect_while_it_waits_for_the_broker(silent_host, sig, tmp_path):
    """It ignored SIGTERM until its 30 s wait for the subscription was over (and SIGINT too)."""
    port, connected = silent_host
    collect = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "collect", "--broker", f"mqtt://127.0.0.1:{port}"]
        + ["--db", f"sqlite:///{tmp_path / 't.db'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert connected.wait(60), "collect never connected"
        collect.send_signal(sig)
        out, err = collect.communicate(timeout=15)  # well inside the 30 s it waits for the broker
    finally:
        collect.kill()
        collect.wait()
    assert collect.returncode == 0, err
    assert json.loads(out)["received"] == 0
    assert "Traceback" not in err and "ERROR" not in err, err


def test_the_trial_report_prints_no_matplotlib_lines(store, db_url, tmp_path):  # noqa: F811 (the fixture)
    done = edge("trial", "report", "--db", db_url, "--to", "2026-06-02", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "matplotlib" not in done.stderr, done.stderr
