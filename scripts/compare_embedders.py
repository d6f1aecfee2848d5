#!/usr/bin/env python3
"""The embedder settled by numbers (issue 23): dlib int8 mirror (the default), dlib fp16 mirror,
SFace int8 (and fp16, to tell int8's loss apart), and dlib int8 mirror + SFace int8 fused.

    .venv/bin/python scripts/compare_embedders.py      # prints markdown; about 25 minutes on 2 shared cores
    .venv/bin/python scripts/compare_embedders.py --summary models/eval/embedders.json   # + the model card's input

Needs SFace built first, in a build venv (`python -m edge.modelbuild.sface`, writes .cache/sface/).
Every image of ../shared/data/lfw_cohort/people.csv and identities.csv goes once through the device's
stills path (detector, quality gate, aligner); each embedder describes the same face
(`edge.central.evaluation.embedders`). Descriptors are cached in --cache, keyed by the model files,
the images and the code that describes them (a rerun takes about 6 minutes).

Out of sample: the cohort's people are split by crc32 of the name as `scripts/check_cohort_split.py`
splits them. The even half builds each embedder's cohort model (per-template scales; the shipped
k, quantile and minimum members); of the odd half, people with crc32 = 1 mod 4 calibrate and 3 mod 4
are held out, so no scale is measured on a person its cohort model holds (as the shipped model
holds no DEV person). On the calibration quarter each embedder gets its threshold, chosen as the
shipped operating point is chosen (`calibrate`: mode, target FMR and scope of the default
embedder's manifest record; groups = gender there), then measured on the held-out quarter and on
DEV (identities.csv, all against all within source, groups = gender x ethnicity), with 95% Wilson
intervals; and misses at equal FMR (each at the FMR the default reached on that set). Fusion:
z-normalised by each embedder's impostor scores on the calibration quarter, averaged. Images
without a descriptor count as misses. Timing: median ms per face over --timing-faces DEV faces.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from build_cohort import DATA  # noqa: E402
from edge.central.evaluation.calibrate import CalibrationRefused, calibrate  # noqa: E402
from edge.central.evaluation.dataset import Dataset, read_identities  # noqa: E402
from edge.central.evaluation.embedders import (  # noqa: E402
    Candidate,
    Described,
    TfliteDescriber,
    ZNorm,
    describe_all,
    fused,
    mirrored,
    ms_per_face,
)
from edge.central.evaluation.evaluate import at_threshold, group_size  # noqa: E402
from edge.central.evaluation.metrics import threshold_at_fmr  # noqa: E402
from edge.central.evaluation.scores import Scores, scored  # noqa: E402
from edge.central.modelcard.embedders import WHERE, group_rows, rate_cell, summarise  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.device.parts import stills_vision  # noqa: E402
from edge.modelbuild.cohort_model import relative_scales, summary  # noqa: E402
from edge.modelbuild.sface import FP16_ID, MODEL_ID, align_112  # noqa: E402
from edge.vision import Embedder, Vision, load_image  # noqa: E402
from edge.vision.pipeline import central_face  # noqa: E402
from edge.vision.runtime import Manifest, load_manifest  # noqa: E402

DEFAULT = "dlib int8 mirror"
FUSED = "fused: dlib int8 mirror + SFace int8"
FUSED_PARTS = (DEFAULT, "SFace int8")
EXTRA_TARGETS = (1e-4,)  # a watchlist-scale target the cohort halves support (DEV cannot)


def candidates(
    vision: Vision, manifest: Manifest, sface_dir: Path, threads: int
) -> dict[str, Embedder | TfliteDescriber]:
    """The embedders compared, by name; the device's own (the default) first."""
    found: dict[str, Embedder | TfliteDescriber] = {
        DEFAULT: vision.embedder,
        "dlib fp16 mirror": mirrored(manifest, "dlib_resnet_v1_fp16", threads),
        "SFace int8": TfliteDescriber(sface_dir / f"{MODEL_ID}.tflite", MODEL_ID, threads),
    }
    if (sface_dir / f"{FP16_ID}.tflite").is_file():
        found["SFace fp16"] = TfliteDescriber(sface_dir / f"{FP16_ID}.tflite", FP16_ID, threads)
    return found


# The code that turns an image into a descriptor: a change here must not reuse old descriptors
# (a detector change once moved the default's held-out misses from 6.70% to 8.09%).
DESCRIBING_CODE = sorted((REPO / "edge" / "vision").glob("*.py")) + [
    REPO / "edge" / "central" / "evaluation" / "embedders.py",
    REPO / "edge" / "modelbuild" / "sface.py",
]


def described(vision: Vision, models: dict, images: list[str], cache: Path) -> Described:
    """Descriptors of every image per model, from the cache when the models, the images and the
    describing code are the same."""
    shas = [[n, m.sha256, getattr(m, "descriptor", "")] for n, m in models.items()]
    code = [hashlib.sha256(f.read_bytes()).hexdigest() for f in DESCRIBING_CODE]
    key = hashlib.sha256(json.dumps([shas, images, code]).encode()).hexdigest()[:16]
    path = cache / f"descriptors-{key}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        failures = json.loads(str(data["failures"]))
        return Described(tuple(images), {n: data[f"d{i}"] for i, n in enumerate(models)}, failures)
    extra = [Candidate(n, m, align_112 if isinstance(m, TfliteDescriber) else None) for n, m in models.items()][1:]
    result = describe_all(vision, DATA, images, extra)
    by_name = {
        DEFAULT: result.descriptors[vision.embedder.model_id],
        **{c.name: result.descriptors[c.name] for c in extra},
    }
    cache.mkdir(parents=True, exist_ok=True)
    arrays = {f"d{i}": by_name[n] for i, n in enumerate(models)}
    np.savez(path, failures=json.dumps(result.failures), **arrays)  # type: ignore[arg-type]
    return Described(tuple(images), by_name, result.failures)


def cohort_parts(rows: list[dict[str, str]], folder: Path) -> tuple[list[str], Path, Path]:
    """people.csv's rows by crc32 of the identity: even (check_cohort_split.py's first half) builds
    the cohort models; of the odd half, 1 mod 4 calibrates and 3 mod 4 is held out. So the people
    whose scales are measured are never in the cohort model, as DEV's are not in the shipped one."""
    part = [zlib.crc32(r["identity"].encode()) % 4 for r in rows]
    paths = (folder / "cohort_calibration.csv", folder / "cohort_heldout.csv")
    for remainder, path in zip((1, 3), paths, strict=True):
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r, p in zip(rows, part, strict=True) if p == remainder)
    return [r["path"] for r, p in zip(rows, part, strict=True) if p % 2 == 0], *paths


def scores_of(dataset: Dataset, desc: Described, name: str, model: dict[str, Any]) -> dict[str, Scores]:
    """The dataset's scores from `name`'s descriptors, in both modes (scales from `model`)."""
    rows = desc.rows(dataset.images)
    descriptors = desc.descriptors[name][rows]
    members = set(dataset.images)
    failures = {image: why for image, why in desc.failures.items() if image in members}
    plain = scored(dataset, descriptors, failures)
    ok = ~np.isnan(descriptors).any(axis=1)
    scales = np.full(len(descriptors), np.nan, np.float32)
    scales[ok] = relative_scales(descriptors[ok], model)
    with_scales = replace(plain, scales=scales)
    return {"global": plain, "per_template": with_scales.in_mode("per_template")}


def measured(scores: Scores, threshold: float) -> dict[str, Any]:
    """Overall and per-group rates at `threshold` (groups flagged when not sizeable)."""
    groups = {}
    for g in scores.dataset.groups:
        groups[g] = {**at_threshold(*scores.split(g), threshold), "sizeable": group_size(scores, g)["sizeable"]}
    return {"overall": at_threshold(*scores.split(None), threshold), "groups": groups}


def timings(vision: Vision, models: dict, images: list[str], count: int) -> dict[str, float]:
    """Median ms per face of each embedder (its own threads), on `count` DEV faces."""
    chips150: list[np.ndarray] = []
    chips112: list[np.ndarray] = []
    for rel in images:
        if len(chips150) == count:
            break
        frame = load_image(DATA / rel)
        faces = vision.detect(frame)
        if faces:
            face = central_face(faces, frame.shape)
            vision.assess(frame, face)
            chips150.append(vision.chip.copy())
            chips112.append(align_112(frame, face))
    return {
        n: ms_per_face(m.embed, np.stack(chips112 if isinstance(m, TfliteDescriber) else chips150))
        for n, m in models.items()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sface", type=Path, default=REPO / ".cache" / "sface", help="folder of the built SFace files")
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "compare_embedders")
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.add_argument(
        "--summary", type=Path, help="also write the deciding figures here, for the model card (make_model_card.py)"
    )
    p.add_argument("--k", type=int, default=128)
    p.add_argument("--quantile", type=float, default=0.005)
    p.add_argument("--timing-faces", type=int, default=60)
    p.add_argument("--limit", type=int, help="only the first N cohort images (a quick trial run)")
    args = p.parse_args()
    if not (args.sface / f"{MODEL_ID}.tflite").is_file():
        print(
            f"no {MODEL_ID}.tflite in {args.sface}: build SFace first, in a build venv "
            f"(models/EMBEDDER_COMPARISON.md, Reproduce): python -m edge.modelbuild.sface --out {args.sface}",
            file=sys.stderr,
        )
        return 1
    settings = load_settings()
    settings = settings.model_copy(update={"models": settings.models.model_copy(update={"threads": 2})})
    vision = stills_vision(settings)
    if vision.embedder.model_id != "dlib_resnet_v1_int8_mirror":
        print(f"the default embedder is {vision.embedder.model_id}; this comparison is written for dlib int8 mirror")
        return 1
    shipped = vision.embedder.entry.spec["operating_point"]
    models = candidates(vision, load_manifest(settings.models.models_dir), args.sface, threads=2)
    people, dev_csv = DATA / "lfw_cohort" / "people.csv", DATA / "identities.csv"
    with people.open(newline="") as f, dev_csv.open(newline="") as g:
        cohort_rows = list(csv.DictReader(f))[: args.limit]
        images = [r["path"] for r in cohort_rows] + [r["path"] for r in csv.DictReader(g)]
    desc = described(vision, models, images, args.cache)
    model_images, cal_csv, held_csv = cohort_parts(cohort_rows, args.cache)  # kept: calibrate records their sha256
    sets = {
        "calibration": read_identities(cal_csv, DATA, "gender", None),
        "heldout": read_identities(held_csv, DATA, "gender", None),
        "dev": read_identities(dev_csv, DATA, "group", "source"),
    }
    targets = [(shipped["target_fmr"], shipped["scope"])] + [(t, shipped["scope"]) for t in EXTRA_TARGETS]
    results: dict[str, Any] = {}
    kept: dict[str, dict[str, dict[str, Scores]]] = {}
    for name in models:
        own = desc.descriptors[name][desc.rows(model_images)]
        cohort = summary(own[~np.isnan(own).any(axis=1)], args.k, args.quantile, 10, 1, {"id": name, "sha256": ""})
        by_set = {s: scores_of(d, desc, name, cohort) for s, d in sets.items()}
        results[name] = evaluate_all(by_set, targets, vision.detector.entry.model_id, results.get(DEFAULT))
        if name in FUSED_PARTS:
            kept[name] = by_set
        del by_set
    norms = {m: [ZNorm.of(kept[n]["calibration"][m]) for n in FUSED_PARTS] for m in ("global", "per_template")}
    fused_sets = {s: {m: fused([kept[n][s][m] for n in FUSED_PARTS], norms[m]) for m in norms} for s in sets}
    results[FUSED] = evaluate_all(fused_sets, targets, vision.detector.entry.model_id, results[DEFAULT])
    ms = timings(vision, models, list(sets["dev"].images), args.timing_faces)
    ms[FUSED] = sum(ms[n] for n in FUSED_PARTS)
    point = f"{shipped['mode']} {shipped['scope']} {shipped['target_fmr']:g}"
    sha256 = {n: m.sha256 for n, m in models.items()}
    sha256[FUSED] = " + ".join(sha256[n] for n in FUSED_PARTS)
    deciding = summarise(results, ms, point, DEFAULT, sha256, verdict(results, ms, point))
    print_tables(results, ms, deciding, desc)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ms_per_face": ms, "shipped": shipped}, indent=1))
    if args.summary:
        args.summary.write_text(json.dumps(deciding, indent=1) + "\n")
    return 0


def evaluate_all(
    by_set: dict[str, dict[str, Scores]], targets: list, detector_id: str, default: dict[str, Any] | None
) -> dict[str, Any]:
    """For each mode and target: the threshold `calibrate` picks on the calibration part, measured
    on the held-out part and on DEV; and, against the `default` embedder's results, the misses at
    the FMR the default reached there (equal FMR: that threshold is set on the measured set)."""
    out: dict[str, Any] = {}
    for mode in ("per_template", "global"):
        for target, scope in targets:
            try:
                entry = calibrate(by_set["calibration"][mode], target, scope, detector_id)
            except CalibrationRefused as e:
                out[f"{mode} {scope} {target:g}"] = {"refused": str(e)}
                continue
            t = entry["threshold"]
            out[f"{mode} {scope} {target:g}"] = {
                "threshold": t,
                "deciding_group": entry["deciding_group"],
                "calibration": measured(by_set["calibration"][mode], t)["overall"],
                "heldout": measured(by_set["heldout"][mode], t),
                "dev": measured(by_set["dev"][mode], t),
            }
            if default is None or "refused" in default[f"{mode} {scope} {target:g}"]:
                continue
            for where in ("heldout", "dev"):
                reached = default[f"{mode} {scope} {target:g}"][where]["overall"]["fmr"]["rate"]
                impostor = by_set[where][mode].split(None)[1]
                out[f"{mode} {scope} {target:g}"][f"{where}_equal_fmr"] = at_threshold(
                    *by_set[where][mode].split(None), threshold_at_fmr(impostor, reached, decimals=6)
                )
    return out


def print_tables(results: dict[str, Any], ms: dict[str, float], deciding: dict[str, Any], desc: Described) -> None:
    point = deciding["point"]
    print(f"{len(desc.images)} images described, {len(desc.failures)} without a descriptor (misses)\n")
    keys = list(next(iter(results.values())))
    header = "| embedder | operating point | threshold | held-out FMR | held-out FNMR | DEV FMR | DEV FNMR |"
    print(header + "\n|---|---|---|---|---|---|---|")
    for key in keys:
        for name, by_point in results.items():
            r = by_point[key]
            if "refused" in r:
                print(f"| {name} | {key} | refused: {r['refused'][:80]} | | | | |")
                continue
            h, d = r["heldout"]["overall"], r["dev"]["overall"]
            print(
                f"| {name} | {key} | {r['threshold']:.4f} | {rate_cell(h['fmr'])} | {rate_cell(h['fnmr'])} | "
                f"{rate_cell(d['fmr'])} | {rate_cell(d['fnmr'])} |"
            )
    print("\nAt equal FMR: each embedder's threshold set on the measured set to the FMR the default reached there\n")
    print(header + "\n|---|---|---|---|---|---|---|")
    for key in keys:
        for name in results:
            h, d = (equal_fmr(results, name, key, w) for w in ("heldout", "dev"))
            if h is None or d is None:
                continue
            print(
                f"| {name} | {key} | | {rate_cell(h['fmr'])} | {rate_cell(h['fnmr'])} | "
                f"{rate_cell(d['fmr'])} | {rate_cell(d['fnmr'])} |"
            )
    print("\n| embedder | ms per face (median, 2 threads) | relative to the default |\n|---|---|---|")
    for name, value in ms.items():
        print(f"| {name} | {value:.2f} | {value / ms[DEFAULT]:.2f}x |")
    if "refused" in results[DEFAULT][point]:
        print(f"\nNo per-group table: {results[DEFAULT][point]['refused']}")
    for where in ("dev", "heldout"):
        print(f"\nPer group at {point}, {WHERE[where]}: FNMR (k/n, 95% interval); FMR below. * = not sizeable\n")
        print("\n".join(group_rows(deciding, where)))
    print("\n" + "\n".join(deciding["verdict"]))


def equal_fmr(results: dict[str, Any], name: str, key: str, where: str) -> dict[str, Any] | None:
    """`name`'s rates at the default's FMR on `where` (the default's own: at its calibrated threshold)."""
    r = results[name][key]
    if "refused" in r:
        return None
    return r[where]["overall"] if name == DEFAULT else r.get(f"{where}_equal_fmr")


def verdict(results: dict[str, Any], ms: dict[str, float], point: str) -> list[str]:
    """Issue 23's rule, with the check that kept the fusion out: a candidate ships only with fewer
    misses at equal FMR, intervals apart (held-out and DEV, at the shipped point), no sizeable DEV
    group's false match rate above the default's (intervals apart), and if the loop still meets the
    speed targets with it (`edge bench`; the time per face is printed to show what it costs)."""
    lines = ["Verdict (issue 23's rule, and no group's false matches raised):"]
    mine = results[DEFAULT][point]
    for name in results:
        if name == DEFAULT:
            continue
        pairs = [
            (equal_fmr(results, name, point, w), equal_fmr(results, DEFAULT, point, w)) for w in ("heldout", "dev")
        ]
        apart = all(c is not None and b is not None and c["fnmr"]["ci95"][1] < b["fnmr"]["ci95"][0] for c, b in pairs)
        theirs = results[name][point]
        raised = (
            []
            if "refused" in theirs or "refused" in mine
            else [
                f"{g} {rate_cell(theirs['dev']['groups'][g]['fmr'])} against {rate_cell(ours['fmr'])}"
                for g, ours in mine["dev"]["groups"].items()
                if ours["sizeable"] and theirs["dev"]["groups"][g]["fmr"]["ci95"][0] > ours["fmr"]["ci95"][1]
            ]
        )
        outcome = "ships if `edge bench` keeps the speed targets with it" if apart and not raised else "does not ship"
        lines.append(
            f"- {name}: fewer misses at equal FMR, intervals apart (held-out and DEV): {'yes' if apart else 'no'}; "
            f"groups whose DEV FMR it raises: {'; '.join(raised) or 'none'}; "
            f"{ms[name]:.2f} ms a face against the default's {ms[DEFAULT]:.2f} -> {outcome}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
