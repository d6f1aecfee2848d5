"""`edge bench` from start to end: enroll a gallery, measure each configuration in a process of
its own, then the reference pipeline on the same clips, and write the table and the JSON."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.bench.clips import Clip
from edge.bench.gallery import build_gallery
from edge.bench.loop_run import LoopSpec
from edge.bench.report import markdown
from edge.config import load_settings
from edge.device.loop import LoopOptions
from edge.device.parts import load_cohort, operating_point, stills_vision
from edge.device.sources import open_source
from edge.machine import machine_info
from edge.vision import load_manifest
from edge.vision.tiling import DEFAULT_TILE_PX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchPlan:
    """What to measure. `config_file` and `models_dir` are the device's, as `edge run` takes them."""

    clips: list[Clip]
    detectors: list[str]
    threads: list[int]
    tile_px: int
    refine: bool
    reference: bool
    synthetic_identities: int
    max_frames: int | None
    passes: int
    config_file: Path | None
    models_dir: Path | None


def run_bench(plan: BenchPlan, out_dir: Path) -> tuple[dict[str, Any], Path]:
    """Run everything; returns the results and the path of the JSON file written.

    The gallery (templates of the people enrolled from photos), the outboxes and the specs live
    in a temporary folder removed at the end: a benchmark keeps only its figures."""
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as work:
        results = _measure(plan, Path(work))
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"edge-bench-{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str))
    json_path.with_suffix(".md").write_text(markdown(results))
    return results, json_path


def _measure(plan: BenchPlan, work: Path) -> dict[str, Any]:
    flags: dict[str, Any] = {"match": {"gallery": str(work / "gallery.sqlite")}, "device": {"state_dir": str(work)}}
    if plan.models_dir is not None:
        flags["models"] = {"models_dir": str(plan.models_dir)}
    machine = machine_info()  # load average before we add to it
    settings = load_settings(plan.config_file, None, **flags)
    stills = stills_vision(settings)
    people = list(dict.fromkeys(p for clip in plan.clips for p in clip.people))
    cohort = load_cohort(settings, stills.embedder.model_id)
    gallery = build_gallery(work / "gallery.sqlite", stills, people, plan.synthetic_identities, cohort)
    threshold = operating_point(settings, stills.embedder.entry).threshold
    default_detector = settings.models.detector or load_manifest(settings.models.models_dir).default_detector
    del stills
    results: dict[str, Any] = {
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "machine": machine,
        "gallery": {**gallery, "threshold": threshold},
        "default": {
            "detector": default_detector,
            "threads": settings.models.threads,
            "tile_px": DEFAULT_TILE_PX,
            "refine": LoopOptions.refine,
        },
        "clips": [_clip_info(clip) for clip in plan.clips],
        "runs": [],
        "reference_note": None,
    }
    if plan.reference and importlib.util.find_spec("dlib") is None:
        results["reference_note"] = "not run: dlib is not installed (pip install 'edge[reference]')"
    jobs = [(clip, detector, threads) for clip in plan.clips for detector in plan.detectors for threads in plan.threads]
    total = len(jobs) + (len(plan.clips) if plan.reference and not results["reference_note"] else 0)
    for n, (clip, detector, threads) in enumerate(jobs, 1):
        spec = LoopSpec(str(clip.path), detector, threads, plan.tile_px, plan.refine, plan.max_frames, plan.passes)
        loop_flags = {**flags, "models": {**flags.get("models", {}), "threads": threads}}
        run = _spawn(
            {
                "kind": "loop",
                "settings": {"config_file": _text(plan.config_file), "flags": loop_flags},
                "loop": asdict(spec),
            },
            work,
            f"{n:02d}",
        )
        run.update(
            clip=clip.name,
            pipeline="edge",
            detector=detector,
            threads=threads,
            tile_px=plan.tile_px,
            refine=plan.refine,
        )
        results["runs"].append(run)
        _progress(n, total, run)
    if plan.reference and not results["reference_note"]:
        for n, clip in enumerate(plan.clips, len(jobs) + 1):
            run = _spawn(
                {
                    "kind": "reference",
                    "reference": {
                        "video": str(clip.path),
                        "templates": gallery["templates"],
                        "threshold": threshold,
                        "max_frames": plan.max_frames,
                    },
                },
                work,
                f"{n:02d}",
            )
            run.update(clip=clip.name, pipeline="reference")
            results["runs"].append(run)
            _progress(n, total, run)
    return results


def _clip_info(clip: Clip) -> dict[str, Any]:
    with open_source(f"file:{clip.path}") as source:
        info = source.info
    return {
        "name": clip.name,
        "path": str(clip.path),
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frames": info.frame_count,
        "enrolled": [p.name for p in clip.people],
    }


def _spawn(spec: dict[str, Any], work: Path, label: str) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its figures, or its error."""
    spec_path, result_path = work / f"{label}.spec.json", work / f"{label}.result.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "edge.bench.worker", str(spec_path), str(result_path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(result_path.read_text())


def _progress(n: int, total: int, run: dict[str, Any]) -> None:
    what = run["pipeline"] if run["pipeline"] == "reference" else f"{run['detector']}, {run['threads']} threads"
    figure = f"error: {run['error']}" if "error" in run else f"{run['fps']:.1f} fps"
    print(f"[{n}/{total}] {run['clip']}: {what}: {figure}", file=sys.stderr, flush=True)


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None
