#!/usr/bin/env python3
"""Simulated watchlists on people nobody tuned on: the device's predicted false alerts against the
false alerts its galleries raise, out of sample.

    .venv/bin/python scripts/check_watchlists_split.py      # ../shared/data/lfw_cohort, about 15 minutes
    .venv/bin/python scripts/check_watchlists_split.py --out models/eval/watchlists_split.json   # for the card

The cohort's people are split as `scripts/check_cohort_split.py` splits them (crc32 of the name):
a cohort model is built from the first half as `scripts/build_cohort.py` builds one. The second
half is split again by the next bit of the same hash into two quarters of people no cohort model
saw: the calibration quarter measures the mixed and one-group rates at the shipped knob, as
`edge calibrate` records them in every entry (all impostor comparisons; the worst gender's
within-group comparisons), and the simulation quarter makes the watchlists and the passers-by
(`edge.central.evaluation.watchlists.simulate`, as `edge eval --watchlists` runs it on DEV). So the
prediction is calibrated on one set of people and checked on another, drawn from one population.

The shipped rates were calibrated on DEV, whose crowd is mixed otherwise (balanced across twelve
groups, where LFW is mostly white men): the first line prints them beside the calibration
quarter's, which is how far a stated figure moves when the crowd differs. Groups are the cohort's
gender column. Prints one JSON object per list size; `--out` also writes them, with the rates and
what they were measured on, as one document that `scripts/make_model_card.py --out-of-sample` renders.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import zlib
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from build_cohort import DATA  # noqa: E402
from check_cohort_split import CohortSplit, split_cohort  # noqa: E402
from edge.central.evaluation.calibrate import mixed_rate, worst_group_rate  # noqa: E402
from edge.central.evaluation.dataset import read_identities  # noqa: E402
from edge.central.evaluation.evaluate import group_size  # noqa: E402
from edge.central.evaluation.scores import scored  # noqa: E402
from edge.central.evaluation.stats import Rate  # noqa: E402
from edge.central.evaluation.watchlists import LISTS, PHOTOS, SEED, SIZES, Device, Population, scratch_folder, simulate  # noqa: E402
from edge.device.parts import operating_point  # noqa: E402
from edge.modelbuild.cohort_model import build_model  # noqa: E402
from edge.vision.cohort import Cohort  # noqa: E402
from edge.vision.operating_point import MeasuredRate, OperatingPoint  # noqa: E402
from edge.vision.runtime import file_sha256  # noqa: E402


def calibration_quarter(identities: np.ndarray) -> np.ndarray:
    """People whose name hashes to the calibration quarter (the hash's second bit), in either half."""
    return np.array([zlib.crc32(who.encode()) // 2 % 2 == 0 for who in identities])


def measured(rate: Rate) -> MeasuredRate:
    return MeasuredRate(rate.k / rate.n, rate.ci95)


def calibrated_on(
    point: OperatingPoint, split: CohortSplit, rows: list[dict[str, str]], people: np.ndarray, cohort: Cohort
) -> OperatingPoint:
    """`point` with its mixed and one-group rates measured at its knob on the images of `people`
    (all against all, per template, groups by gender), as `edge calibrate` measures them."""
    with tempfile.TemporaryDirectory() as folder:
        subset = Path(folder) / "calibration.csv"
        with subset.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row, chosen in zip(rows, people, strict=True) if chosen)
        dataset = read_identities(subset, DATA, group_column="gender", within=None)
    scores = scored(dataset, split.descriptors[people], {}, cohort).in_mode(point.mode)
    sizeable = [g for g in dataset.groups if group_size(scores, g)["sizeable"]]
    return replace(
        point,
        mixed=measured(mixed_rate(scores, point.threshold)),
        bound=measured(worst_group_rate(scores, sizeable, point.threshold)),
        origin=f"{point.origin}; rates measured on {int(people.sum())} images of the calibration quarter",
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, default=DATA / "lfw_cohort" / "people.csv")
    p.add_argument("--lists", type=int, default=LISTS)
    p.add_argument("--out", type=Path, help="also write the results here as one JSON document")
    args = p.parse_args()
    split = split_cohort(args.cohort)
    if split is None:
        return 1
    vision, identities, descriptors, usable = split.vision, split.identities, split.descriptors, split.usable
    with args.cohort.open(newline="") as f:
        rows = list(csv.DictReader(f))
    genders = np.asarray([row["gender"] for row in rows])
    embedder = {"id": vision.embedder.model_id, "sha256": vision.embedder.sha256}
    first = usable & ~split.second
    model = build_model(descriptors[first], identities[first], 128, 0.005, 10, 1, embedder)
    cohort = Cohort.from_json(model, "first_half", "0" * 64, embedder["id"], embedder["sha256"])
    quarter = calibration_quarter(identities)
    shipped = operating_point(split.settings, vision.embedder.entry)
    point = calibrated_on(shipped, split, rows, usable & split.second & quarter, cohort)
    held = usable & split.second & ~quarter
    rates = {
        name: {"mixed_fmr": q.mixed and q.mixed.as_dict(), "bound_fmr": q.bound and q.bound.as_dict()}
        for name, q in (("shipped_dev", shipped), ("calibration_quarter", point))
    }
    document = {
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "embedder": embedder,
        "cohort_file": os.path.relpath(args.cohort.resolve(), REPO),
        "cohort_sha256": file_sha256(args.cohort),
        "knob": shipped.threshold,
        "mode": shipped.mode,
        "rates": rates,
        "images": {"cohort_model": int(first.sum()), "calibration": int((usable & split.second & quarter).sum())},
        "simulated": {"images": int(held.sum()), "people": int(np.unique(identities[held]).size)},
        "lists": args.lists,
        "photos": PHOTOS,
        "seed": SEED,
        "sizes": [],
    }
    print(json.dumps({k: v for k, v in document.items() if k != "sizes"}), flush=True)
    population = Population(descriptors[held], identities[held], genders[held], np.full(int(held.sum()), ""))
    with scratch_folder() as folder:
        device = Device(point, cohort, embedder["id"], embedder["sha256"], Path(folder))
        for size in SIZES:
            document["sizes"].append(simulate(device, population, size, args.lists, PHOTOS, SEED))
            print(json.dumps(document["sizes"][-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
