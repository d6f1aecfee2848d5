#!/usr/bin/env python3
"""Gallery search at scale, and enrollment speed of a folder of photos.

    python scripts/bench_gallery.py                        # 100 to 50,000 identities x 5; ../shared/data/lfw
    python scripts/bench_gallery.py --sizes 1000 --folder DIR --limit 50

Search: `edge.gallery.Matcher.match` (the call the device makes once per embedded face)
against galleries of synthetic identities (random directions scaled like real descriptors,
`edge.bench.gallery.synthetic_templates`), one probe at a time, median and p95 ms per query, in
both matching modes measured in the same run: one global threshold (the baseline) and
per-template thresholds (each template's scale from the embedder's cohort model).
Enrollment: every photo of FOLDER/<person>/ goes through the path `edge enroll` takes (load,
detect with the stills detector, gate, align, embed), then each person is added to a gallery
file; a progress bar shows the time per photo.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.bench.gallery import synthetic_templates  # noqa: E402
from edge.bench.timer import summarise  # noqa: E402
from edge.config import load_settings  # noqa: E402
from edge.device.parts import load_cohort, stills_vision  # noqa: E402
from edge.enrollment import Person, add_to_gallery, describe_people, people_in_folder  # noqa: E402
from edge.gallery import GalleryStore, Matcher, TemplateScaler  # noqa: E402
from edge.vision import load_manifest  # noqa: E402

TEMPLATES_PER_IDENTITY = 5
THRESHOLD = 0.6
MODES = ("global", "per_template")
WARM_UP = 10  # probes not timed


def search(sizes: list[int], queries: int, scaler: TemplateScaler) -> list[dict]:
    """Per size, one row per mode: "global" (every scale 1, the baseline) and "per_template"
    (`scaler`'s scales). The two are timed probe by probe in turn, so both see the same load."""
    probes, _ = synthetic_templates(queries, 1, seed=1)
    rows = []
    for size in sizes:
        templates, ids = synthetic_templates(size, TEMPLATES_PER_IDENTITY)
        matchers, build_ms = {}, {}
        for mode in MODES:
            started = time.perf_counter()
            scales = scaler.scales(templates) if mode == "per_template" else None
            matchers[mode] = Matcher(templates, ids, scales=scales)
            build_ms[mode] = (time.perf_counter() - started) * 1000.0
        del templates
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for i, probe in enumerate(probes):
            for mode, matcher in matchers.items():
                started = time.perf_counter()
                matcher.match(probe, THRESHOLD)
                if i >= WARM_UP:  # caches and BLAS threads warm first
                    times[mode].append((time.perf_counter() - started) * 1000.0)
        for mode, matcher in matchers.items():
            rows.append(
                {
                    "identities": size,
                    "mode": mode,
                    "templates": matcher.template_count,
                    "build_ms": build_ms[mode],
                    "mb": matcher.template_count * 128 * 4 / 2**20,
                    **summarise(times[mode]),
                }
            )
    return rows


def enroll_folder(folder: Path, limit: int | None, scaler: TemplateScaler) -> dict:
    """`edge enroll --folder`'s path over FOLDER (the first `limit` photos), timed per photo."""
    from tqdm import tqdm

    people = people_in_folder(folder)
    if limit is not None:
        kept, room = [], limit
        for person in people:
            if room > 0:
                kept.append(Person(person.name, person.photos[:room]))
                room -= len(kept[-1].photos)
        people = kept
    settings = load_settings(None, None)
    vision = stills_vision(settings)
    per_photo: list[float] = []
    last = time.perf_counter()
    with tqdm(total=sum(len(p.photos) for p in people), unit="photo", desc="enroll") as bar:

        def photo_done() -> None:
            nonlocal last
            now = time.perf_counter()
            per_photo.append((now - last) * 1000.0)
            last = now
            bar.set_postfix_str(f"{per_photo[-1]:.1f} ms", refresh=False)
            bar.update()

        outcomes = describe_people(vision, people, on_photo=photo_done)
    with tempfile.TemporaryDirectory() as work:
        embedder = vision.embedder
        started = time.perf_counter()
        with GalleryStore.create(
            Path(work) / "gallery.sqlite", embedder.model_id, embedder.sha256, scaler=scaler
        ) as store:
            add_to_gallery(store, outcomes)
        store_ms = (time.perf_counter() - started) * 1000.0
    return {
        "photos": len(per_photo),
        "rejected": sum(len(o.rejected) for o in outcomes),
        "people": sum(1 for o in outcomes if o.accepted),
        "store_ms": store_ms,
        **summarise(per_photo),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000, 50_000])
    parser.add_argument("--queries", type=int, default=500, help="probes per gallery size (and mode)")
    parser.add_argument(
        "--folder",
        type=Path,
        default=REPO.parent / "shared" / "data" / "lfw",
        help="photos to enroll, one subfolder per person",
    )
    parser.add_argument("--limit", type=int, help="enroll only the first N photos")
    args = parser.parse_args()
    settings = load_settings(None, None)
    cohort = load_cohort(
        settings, settings.models.embedder or load_manifest(settings.models.models_dir).default_embedder
    )

    print(
        f"\nSearch: one probe against N identities x {TEMPLATES_PER_IDENTITY} templates "
        f"(Matcher.match, {args.queries} probes; per_template scales from cohort {cohort.model_id})\n"
    )
    print("| identities | mode | templates | templates MB | build ms | median ms per query | p95 ms per query |")
    print("|---|---|---|---|---|---|---|")
    for r in search(args.sizes, args.queries, cohort):
        print(
            f"| {r['identities']:,} | {r['mode']} | {r['templates']:,} | {r['mb']:.1f} | {r['build_ms']:.0f} "
            f"| {r['median_ms']:.3f} | {r['p95_ms']:.3f} |"
        )
    if args.folder.is_dir():
        e = enroll_folder(args.folder, args.limit, cohort)
        print(
            f"\nEnrollment of {args.folder}: {e['photos']} photos of {e['people']} people accepted "
            f"({e['rejected']} refused by the gate), per photo median {e['median_ms']:.1f} ms, "
            f"p95 {e['p95_ms']:.1f} ms; writing the gallery {e['store_ms']:.0f} ms"
        )
    else:
        print(f"\nEnrollment skipped: no folder {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
