"""The Markdown tables of `edge bench`, from its results (the JSON it writes)."""

from __future__ import annotations

import math
from typing import Any

STAGES = ("decode", "scene", "detect", "track", "align", "refine", "embed", "match", "outbox")
PER_FACE = frozenset({"align", "refine", "embed", "match", "outbox"})  # calls differ from frames
_DETECTOR_NAMES = {"blazeface_short_range": "short range", "blazeface_full_range": "full range"}
REFERENCE = "reference: dlib HOG x1, 5-point, ResNet"


def markdown(results: dict[str, Any]) -> str:
    m, g, d = results["machine"], results["gallery"], results["default"]
    lines = [
        f"# edge bench, {results['started_at']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['arch']}), {m['os']}; Python {m['python']}, "
        f"numpy {m['numpy']}, {m['tflite_runtime']}, OpenCV {m['opencv']}"
        + (f", {m['dlib']}" if m.get("dlib") else "")
        + f"; edge {m['edge']}; "
        f"load average at start {m['load_average_1m']}.",
        "",
        f"Gallery: {len(g['enrolled'])} enrolled from photos and {g['synthetic_identities']:,} synthetic "
        f"identities of 5 templates ({g['templates']:,} templates); threshold {g['threshold']:.4g}. "
        f"Default configuration: {_detector(d['detector'])}, {d['threads']} threads, tiles of at most "
        f"{d['tile_px']} px, refinement {'on' if d['refine'] else 'off'}.",
        "",
        "Clips: "
        + "; ".join(
            f"{c['name']} {c['width']}x{c['height']}, {c['frames']} frames at {c['fps'] or 0:.0f} fps"
            for c in results["clips"]
        )
        + ".",
        "",
        "## Whole loop",
        "",
        "fps and stage times: every frame, as fast as the clip decodes; with several passes, the median pass "
        "(all passes' range in brackets). Latencies: the clip released at its own frame rate, as a camera "
        "delivers it. x ref: fps over the reference's on the same frames.",
        "",
        "| clip | pipeline | fps | x ref | faces/frame | CPU % | peak RSS MB "
        "| frame latency p50/p95 ms | event latency p50/p95 ms (events) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    reference_fps = {r["clip"]: r["fps"] for r in results["runs"] if r["pipeline"] == "reference" and "fps" in r}
    for run in results["runs"]:
        label = _label(run, d)
        if "error" in run:
            lines.append(f"| {run['clip']} | {label} | failed: {run['error']} |||||||")
            continue
        ratio = run["fps"] / reference_fps[run["clip"]] if run["clip"] in reference_fps else math.nan
        camera = run.get("camera")
        frame_lat = event_lat = "-"
        if camera:
            fl, el = camera["frame_latency_ms"], camera["event_latency_ms"]
            frame_lat = f"{fl['p50']:.1f} / {fl['p95']:.1f}" if fl else "-"
            event_lat = (
                f"{el['median_ms']:.1f} / {el['p95_ms']:.1f} ({camera['events']})" if camera["events"] else "- (0)"
            )
        passes = run.get("fps_passes", [])
        fps = f"{run['fps']:.1f}" + (f" ({min(passes):.0f}-{max(passes):.0f})" if len(passes) > 1 else "")
        lines.append(
            f"| {run['clip']} | {label} | {fps} | {_num(ratio, 1)} | {run['faces_per_frame']:.2f} "
            f"| {run['cpu_percent']:.0f} | {run['peak_rss_mb']:.0f} | {frame_lat} | {event_lat} |"
        )
    if results.get("reference_note"):
        lines += ["", f"Reference {results['reference_note']}."]
    lines += [
        "",
        "## Stage times, median / p95 ms (calls, where not one per frame)",
        "",
        "| clip | pipeline | " + " | ".join(STAGES) + " |",
        "|---|---|" + "---|" * len(STAGES),
    ]
    for run in results["runs"]:
        if "error" not in run:
            cells = [_stage(run["stages"].get(stage), stage) for stage in STAGES]
            lines.append(f"| {run['clip']} | {_label(run, d)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _label(run: dict[str, Any], default: dict[str, Any]) -> str:
    if run["pipeline"] == "reference":
        return REFERENCE
    label = f"edge {_detector(run['detector'])}, {run['threads']} thr"
    if run["tile_px"] != default["tile_px"]:
        label += f", tiles {run['tile_px'] or 'off'}"
    if run["refine"] != default["refine"]:
        label += f", refine {'on' if run['refine'] else 'off'}"
    is_default = all(run[k] == default[k] for k in ("detector", "threads", "tile_px", "refine"))
    return f"**{label} (default)**" if is_default else label


def _detector(model_id: str) -> str:
    return _DETECTOR_NAMES.get(model_id, model_id)


def _stage(figures: dict[str, float] | None, stage: str) -> str:
    if not figures or not figures["calls"]:
        return "-"
    text = f"{figures['median_ms']:.2f} / {figures['p95_ms']:.2f}"
    return f"{text} ({figures['calls']})" if stage in PER_FACE else text


def _num(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"
