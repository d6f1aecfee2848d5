"""A board fresh from its bundle has no gallery yet: a fleet device starts empty, others refuse.

The empty gallery file is made only once the start has succeeded: a start that fails (the broker
unreachable, the camera missing) leaves the state folder, where a board keeps its gallery, as it was.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from support_cohort import cohort_for
from test_device_e2e import edge_run_command

from edge.config import load_settings
from edge.device.parts import load_matcher
from edge.gallery import GalleryNotFound, GalleryStore
from edge.link.signed import write_private_key, write_public_key


def settings(tmp_path, fleet: bool):
    keys = {"signing_public_key": tmp_path / "fleet-signing.pub", "device_key": tmp_path / "box.key"} if fleet else {}
    return load_settings(match={"gallery": tmp_path / "gallery.sqlite"}, fleet=keys)


def test_fleet_device_without_gallery_starts_empty_and_makes_no_file_yet(tmp_path, stills_vision):
    embedder = stills_vision.embedder
    matcher = load_matcher(settings(tmp_path, fleet=True), stills_vision, cohort_for(embedder.model_id))
    assert len(matcher) == 0 and matcher.per_template
    assert not (tmp_path / "gallery.sqlite").exists()
    with GalleryStore.create(
        tmp_path / "other.sqlite", embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)
    ) as store:
        assert store.version == matcher.version  # the version of a real, empty gallery of this embedder


def test_device_outside_a_fleet_refuses_a_missing_gallery(tmp_path, stills_vision):
    with pytest.raises(GalleryNotFound, match="does not exist"):
        load_matcher(settings(tmp_path, fleet=False), stills_vision, cohort_for(stills_vision.embedder.model_id))
    assert not (tmp_path / "gallery.sqlite").exists()


@pytest.fixture
def board(tmp_path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A provisioned board's state folder (install.sh makes it; the gallery lives in it) and the
    environment that gives `edge run` the fleet's keys, as the bundle's edge.toml does."""
    write_public_key(tmp_path / "fleet-signing.pub", Ed25519PrivateKey.generate().public_key())
    write_private_key(tmp_path / "box.key", X25519PrivateKey.generate())
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    env = {
        **os.environ,
        "EDGE_FLEET__SIGNING_PUBLIC_KEY": str(tmp_path / "fleet-signing.pub"),
        "EDGE_FLEET__DEVICE_KEY": str(tmp_path / "box.key"),
        "EDGE_MQTT__CONNECT_TIMEOUT_S": "5",
    }
    yield state, env


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A broker address nobody listens on: a bound socket that never listens refuses every connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"mqtt://127.0.0.1:{s.getsockname()[1]}"


def edge_run(board, video: Path | str, broker_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    state, env = board
    command = edge_run_command(video, state / "gallery.sqlite", broker_url, state, *extra)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_a_failed_start_leaves_the_state_folder_untouched_and_a_good_one_makes_the_gallery(
    board, data_dir, broker, refused_url, tmp_path, stills_vision
):
    state, _ = board
    video = data_dir / "videos" / "lfw_slideshow.mp4"
    for done in (edge_run(board, video, refused_url), edge_run(board, tmp_path / "missing.mp4", broker.url)):
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 1 and last.startswith("edge run: ") and "Traceback" not in done.stderr, done.stderr
        assert list(state.iterdir()) == [], f"a failed start ({last}) wrote into the state folder"
        assert stat.S_IMODE(state.stat().st_mode) == 0o755
    done = edge_run(board, video, broker.url, "--max-frames", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    embedder = stills_vision.embedder
    with GalleryStore.open(
        state / "gallery.sqlite", embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)
    ) as store:
        assert store.identities() == []
    assert stat.S_IMODE((state / "gallery.sqlite").stat().st_mode) == 0o600
