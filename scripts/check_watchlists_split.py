#!/usr/bin/env python3
"""Simulated watchlists on people nobody tuned on: the device's predicted false alerts against the
false alerts its galleries raise, out of sample.

    .venv/bin/python scripts/check_watchlists_split.py      # ../shared/data/lfw_cohort, a few minutes

The cohort's people are split as `scripts/check_cohort_split.py` splits them (crc32 of the name).
A cohort model is built from the first half as `scripts/build_cohort.py` builds one; the second
half's people make the watchlists and the passers-by (`edge.central.watchlists.simulate`, as
`edge eval --watchlists` runs it on DEV) at the shipped operating point, whose rates were
calibrated on DEV. Groups are the cohort's gender column. Prints one JSON object per list size.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from build_cohort import DATA  # noqa: E402
from check_cohort_split import split_cohort  # noqa: E402
from edge.central.cohort_model import build_model  # noqa: E402
from edge.central.watchlists import LISTS, PHOTOS, SEED, SIZES, Device, Population, scratch_folder, simulate  # noqa: E402
from edge.device.app import operating_point  # noqa: E402
from edge.vision.cohort import Cohort  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, default=DATA / "lfw_cohort" / "people.csv")
    p.add_argument("--lists", type=int, default=LISTS)
    args = p.parse_args()
    split = split_cohort(args.cohort)
    if split is None:
        return 1
    vision, identities, descriptors, second, usable = (
        split.vision,
        split.identities,
        split.descriptors,
        split.second,
        split.usable,
    )
    with args.cohort.open(newline="") as f:
        genders = np.asarray([row["gender"] for row in csv.DictReader(f)])
    embedder = {"id": vision.embedder.model_id, "sha256": vision.embedder.sha256}
    model = build_model(descriptors[usable & ~second], identities[usable & ~second], 128, 0.005, 10, 1, embedder)
    cohort = Cohort.from_json(model, "first_half", "0" * 64, embedder["id"], embedder["sha256"])
    held = usable & second
    population = Population(descriptors[held], identities[held], genders[held], np.full(int(held.sum()), ""))
    point = operating_point(split.settings, vision.embedder.entry)
    with scratch_folder() as folder:
        device = Device(point, cohort, embedder["id"], embedder["sha256"], Path(folder))
        for size in SIZES:
            print(json.dumps({"K": size, **simulate(device, population, size, args.lists, PHOTOS, SEED)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
