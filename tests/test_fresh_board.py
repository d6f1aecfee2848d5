"""A board fresh from its bundle has no gallery yet: a fleet device starts empty, others refuse."""

from __future__ import annotations

import pytest
from support_cohort import cohort_for

from edge.config import load_settings
from edge.device.app import load_matcher
from edge.gallery import GalleryNotFound, GalleryStore


def settings(tmp_path, fleet: bool):
    keys = {"signing_public_key": tmp_path / "fleet-signing.pub", "device_key": tmp_path / "box.key"} if fleet else {}
    return load_settings(match={"gallery": tmp_path / "gallery.sqlite"}, fleet=keys)


def test_fleet_device_without_gallery_starts_empty_and_the_file_takes_pushes(tmp_path, stills_vision):
    matcher = load_matcher(settings(tmp_path, fleet=True), stills_vision, cohort_for(stills_vision.embedder.model_id))
    assert len(matcher) == 0
    embedder = stills_vision.embedder
    with GalleryStore.open(
        tmp_path / "gallery.sqlite", embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)
    ) as store:
        assert store.version == matcher.version  # a real, empty gallery of this embedder


def test_device_outside_a_fleet_refuses_a_missing_gallery(tmp_path, stills_vision):
    with pytest.raises(GalleryNotFound, match="does not exist"):
        load_matcher(settings(tmp_path, fleet=False), stills_vision, cohort_for(stills_vision.embedder.model_id))
    assert not (tmp_path / "gallery.sqlite").exists()
