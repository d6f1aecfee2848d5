"""The shipped cohort model of an embedder: tests that write galleries through the store pass it
as the store's scaler, as the device does (`edge.device.parts.load_cohort`)."""

from __future__ import annotations

from functools import cache

from edge.vision import load_manifest
from edge.vision.cohort import Cohort


@cache
def cohort_for(embedder_id: str) -> Cohort:
    return Cohort.load(load_manifest(), embedder_id)
