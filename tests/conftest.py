"""Shared fixtures: where the real data and models are, skipping clearly when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
DATA_DIR = Path(os.environ.get("EDGE_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """`../shared/data` (or $EDGE_TEST_DATA); tests that need it skip when it is absent."""
    if not (DATA_DIR / "MANIFEST.md").is_file():
        pytest.skip(f"face data not found at {DATA_DIR} (set EDGE_TEST_DATA or check out ../shared)")
    return DATA_DIR


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS_DIR
