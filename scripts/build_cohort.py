#!/usr/bin/env python3
"""Build the cohort model of the embedder from a cohort of strangers, and record it in the manifest.

    .venv/bin/python scripts/build_cohort.py                       # ../shared/data/lfw_cohort, models/
    .venv/bin/python scripts/build_cohort.py --k 128 --quantile 0.005 --grid

Every cohort image goes through the device's own still-image path (stills detector, quality gate,
aligner, embedder). What is written (`models/cohort_<embedder>.json`) is an aggregate: k-means
centroids of at least --min-members people each with their counts, the scale statistic, and the
per-person multiplicity table and the quantiles of genuine (same-person) distances over the
template's scale (negative feedback's expected miss rate); never an individual's descriptor. The
manifest gets the file's record (kind "cohort", sha256, source data set and its sha256) and the
embedder record names it.

Rebuilding a file already there says whether its centroids and counts came out identical; when they
did and --grid is not given, the file's "selection" table is kept, since it was measured on those
same descriptors. k-means does not always give the same centroids again (measured here: the same
images, embedder and seed gave other clusters than the shipped files'), and every gallery's scales
follow the centroids, so --add-genuine adds only the genuine block to the file there, with scales
from its own centroids, leaving everything else in it as it was:

    .venv/bin/python scripts/build_cohort.py --embedder dlib_resnet_v1_int8 --add-genuine

With --grid, the statistic's parameters are compared on DEV (identities.csv): FNMR at the
worst-group FMR target for each k and quantile, against one global threshold, so the choice
can be stated in the model card. The table is stored in the cohort file ("selection").
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.central.evaluation.calibrate import CalibrationRefused, calibrate  # noqa: E402
from edge.central.evaluation.dataset import Dataset, read_identities  # noqa: E402
from edge.central.evaluation.metrics import false_non_matches  # noqa: E402
from edge.central.evaluation.scores import Scores, describe_images  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.device.parts import stills_vision  # noqa: E402
from edge.modelbuild.cohort_model import build_model, genuine, relative_scales, summary  # noqa: E402
from edge.vision import Vision  # noqa: E402
from edge.vision.runtime import MANIFEST_NAME, file_sha256  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", REPO.parent / "shared" / "data"))
GRID_K = (64, 128, 256)
GRID_QUANTILES = (0.001, 0.005, 0.02)
SELECTION_TARGET = 0.012


def describe(vision: Vision, csv_path: Path, root: Path) -> tuple[Dataset, np.ndarray, dict[str, str]]:
    """The labeled images of `csv_path` (every image once) with their descriptors (NaN rows: no descriptor)."""
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    none = np.empty(0, np.int32)
    dataset = Dataset(  # images only: the cohort's 48 million pairs are not needed here
        csv_path,
        root,
        "identities",
        "gender",
        None,
        csv_path.name,
        tuple(r["path"] for r in rows),
        tuple(r["identity"] for r in rows),
        (),
        none,
        none,
        none.astype(bool),
        none,
    )
    descriptors, failures = describe_images(vision, dataset)
    return dataset, descriptors, failures


def selection(vision: Vision, dev_csv: Path, cohort: np.ndarray, base: dict) -> list[dict]:
    """FNMR on DEV at the worst-group target for each (k, quantile), and for one global threshold."""
    dev = read_identities(dev_csv, dev_csv.parent)
    descriptors, failures = describe_images(vision, dev)
    distances = np.linalg.norm(descriptors[dev.a] - descriptors[dev.b], axis=1)
    rows = [_selected(Scores(dev, distances, failures), "one global threshold", {})]
    for k in GRID_K:
        for quantile in GRID_QUANTILES:
            model = summary(cohort, k, quantile, base["min_members"], base["seed"], base["embedder"])
            scales = relative_scales(np.nan_to_num(descriptors), model)
            scores = Scores(dev, distances / scales[dev.a], failures)
            rows.append(_selected(scores, f"k={k} quantile={quantile:g}", {"k": k, "quantile": quantile}))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _selected(scores: Scores, name: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        entry = calibrate(scores, SELECTION_TARGET, "worst_group", "selection")
    except CalibrationRefused as e:
        return {"name": name, **params, "refused": str(e)}
    genuine, impostor = scores.split(None)
    missed, pairs = false_non_matches(genuine, entry["threshold"])
    overall = np.count_nonzero(impostor <= entry["threshold"]) / np.count_nonzero(~np.isnan(impostor))
    return {
        "name": name,
        **params,
        "knob": entry["threshold"],
        "fnmr": round(missed / pairs, 4),
        "worst_group_fmr": entry["fmr"],
        "deciding_group": entry["deciding_group"],
        "overall_fmr": round(float(overall), 6),
    }


def add_genuine(models_dir: Path, embedder_id: str, descriptors: np.ndarray, identities: np.ndarray) -> int:
    """Add (or replace) the genuine block of the embedder's cohort file, scaled by the file's own
    centroids; everything else in the file stays byte for byte. Records the new sha256."""
    file_name = f"cohort_{embedder_id}.json"
    path = models_dir / file_name
    if not path.is_file():
        print(f"no cohort file {path} to add the genuine block to: build it first", file=sys.stderr)
        return 1
    model = json.loads(path.read_text())
    model["genuine"] = genuine(descriptors, identities, relative_scales(descriptors, model))
    path.write_text(json.dumps(model, separators=(",", ":")) + "\n")
    source = {
        "license": json.loads((models_dir / MANIFEST_NAME).read_text())["models"][path.stem]["license"],
        "dataset": "LFW identities in neither DEV nor the held-out set (../shared/data/lfw_cohort)",
        "dataset_sha256": model["built_from"]["dataset_sha256"],
        "statistic": {k: v for k, v in model["statistic"].items() if k != "description"},
        "min_members": model["min_members"],
    }
    record(models_dir, embedder_id, path.stem, file_name, source)
    block = {k: v for k, v in model["genuine"].items() if k != "quantiles"}
    print(json.dumps({"file": str(path), "genuine": block, "median": model["genuine"]["quantiles"][100]}, indent=2))
    return 0


def keep_selection(path: Path, model: dict[str, Any]) -> None:
    """Compare the new centroids and counts with the file's (if any); keep its selection table when
    they are identical and no new one was measured."""
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    same = (old.get("centroids"), old.get("counts")) == (model["centroids"], model["counts"])
    print(f"{path.name}: centroids and counts {'identical to' if same else 'DIFFER from'} the file's", flush=True)
    if same and "selection" in old and "selection" not in model:
        model["selection"] = old["selection"]


def record(models_dir: Path, embedder_id: str, cohort_id: str, file_name: str, source: dict[str, Any]) -> None:
    """Add the cohort model's record to the manifest and name it in the embedder's record, atomically."""
    path = models_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["models"][cohort_id] = {
        "kind": "cohort",
        "file": file_name,
        "sha256": file_sha256(models_dir / file_name),
        "license": source.pop("license"),
        "embedder": embedder_id,
        "source": source,
    }
    manifest["models"][embedder_id]["cohort"] = cohort_id
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", type=Path, default=DATA / "lfw_cohort" / "people.csv", help="path,identity,gender CSV")
    p.add_argument("--root", type=Path, help="folder the cohort CSV's paths are relative to (default: its parent's)")
    p.add_argument("--dev", type=Path, default=DATA / "identities.csv", help="DEV identities.csv for --grid")
    p.add_argument("--models", type=Path, default=REPO / "models")
    p.add_argument("--embedder", help="embedder model id (default: the manifest's default embedder)")
    p.add_argument("--k", type=int, default=128, help="k-means centroids (default 128)")
    p.add_argument("--quantile", type=float, default=0.005, help="share of the cohort within the scale (0.005)")
    p.add_argument("--min-members", type=int, default=10, help="people a centroid averages at least (10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--grid", action="store_true", help="compare k and quantile on DEV and store the table")
    p.add_argument(
        "--add-genuine",
        action="store_true",
        help="add the genuine block to the cohort file there, keeping its centroids and everything else",
    )
    args = p.parse_args()
    if not args.cohort.is_file():
        print(f"cohort file not found: {args.cohort} (see ../shared/data/MANIFEST.md)", file=sys.stderr)
        return 1
    settings = load_settings(None, None, models={"models_dir": args.models, "embedder": args.embedder})
    vision = stills_vision(settings)
    embedder = {"id": vision.embedder.model_id, "sha256": vision.embedder.sha256}
    dataset, descriptors, failures = describe(vision, args.cohort, args.root or args.cohort.parent.parent)
    usable = ~np.isnan(descriptors[:, 0])
    cohort, identities = descriptors[usable], np.asarray(dataset.identities)[usable]
    print(f"cohort: {len(dataset.images)} images, {len(failures)} without a descriptor", flush=True)
    if args.add_genuine:
        return add_genuine(args.models, embedder["id"], cohort, identities)
    base = {"min_members": args.min_members, "seed": args.seed, "embedder": embedder}
    model = build_model(cohort, identities, args.k, args.quantile, args.min_members, args.seed, embedder)
    model["built_from"] = {
        "dataset": args.cohort.name,
        "dataset_sha256": file_sha256(args.cohort),
        "images": len(dataset.images),
        "images_used": int(usable.sum()),
        "identities_used": len(set(identities.tolist())),
        "quality_gate": settings.quality.model_dump(),
    }
    if args.grid:
        model["selection"] = {
            "dataset": args.dev.name,
            "dataset_sha256": file_sha256(args.dev),
            "target_fmr": SELECTION_TARGET,
            "scope": "worst_group",
            "rows": selection(vision, args.dev, cohort, base),
        }
    file_name = f"cohort_{embedder['id']}.json"
    keep_selection(args.models / file_name, model)
    (args.models / file_name).write_text(json.dumps(model, separators=(",", ":")) + "\n")
    source = {
        "license": "derived aggregate of LFW descriptors (LFW: research benchmark without a formal licence)",
        "dataset": "LFW identities in neither DEV nor the held-out set (../shared/data/lfw_cohort)",
        "dataset_sha256": model["built_from"]["dataset_sha256"],
        "statistic": {k: v for k, v in model["statistic"].items() if k != "description"},
        "min_members": args.min_members,
    }
    record(args.models, embedder["id"], Path(file_name).stem, file_name, source)
    print(json.dumps({"file": str(args.models / file_name), **model["statistic"], **model["built_from"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
