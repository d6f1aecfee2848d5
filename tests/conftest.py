"""Shared fixtures: where the real data and models are, skipping clearly when they are absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# real Mosquitto on a free loopback port; the package built as a wheel and installed in a fresh venv;
# a throwaway PostgreSQL server and `db_url` (each test on SQLite and PostgreSQL); skips that fail in CI
pytest_plugins = ["support_broker", "support_wheel", "support_postgres", "support_ci"]

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("EDGE_MODELS_DIR", REPO / "models")).resolve()
DATA_DIR = Path(os.environ.get("EDGE_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


# What a test needs, read from the fixtures it uses (so a new test is marked without anyone
# remembering to): `pytest -m "not postgres"` runs everything that needs no PostgreSQL, and so on.
NEEDS = {
    "broker": {"broker", "broker_factory", "subscriber_factory", "demo_broker_available"},
    "postgres": {"postgres_url"},
    "browser": {"chromium"},
    "wheel": {"edge_wheel", "edge_wheels", "installed_edge"},
    "data": {"data_dir"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql":
            used.add("postgres_url")
        for need, fixtures in NEEDS.items():
            if used & fixtures:
                item.add_marker(need)
        if used & NEEDS["wheel"]:  # one worker builds the wheel once (pytest-xdist --dist loadgroup)
            item.add_marker(pytest.mark.xdist_group("wheel"))


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (apt-get install chromium), headless pages and screenshots."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium not installed: apt-get install -y chromium")
    return found


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """`../shared/data` (or $EDGE_TEST_DATA); tests that need it skip when it is absent."""
    if not (DATA_DIR / "MANIFEST.md").is_file():
        pytest.skip(f"face data not found at {DATA_DIR} (set EDGE_TEST_DATA or check out ../shared)")
    return DATA_DIR


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS_DIR


@pytest.fixture(scope="session")
def manifest(models_dir: Path):
    from edge.vision import load_manifest

    return load_manifest(models_dir)


@pytest.fixture(scope="session")
def stills_vision(manifest):
    """The pipeline as still-image commands (verify, enroll, eval) build it: short-range detector."""
    from edge.vision import Vision

    return Vision(manifest, detector_id="blazeface_short_range")
