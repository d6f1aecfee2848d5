"""`edge bench` end to end on a tiny generated clip: the JSON and the table carry every figure.

Nothing here asserts a wall-clock value: only that each figure is there and makes sense.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest

from edge.bench.report import STAGES
from edge.cli import main

pytest.importorskip("matplotlib", reason="the generated clip uses matplotlib's sample portrait")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[dict, str]:
    from edge.bench.clips import sample_clip

    work = tmp_path_factory.mktemp("bench")
    clip = sample_clip(work, frames_per_appearance=20)
    portrait = clip.people[0].photos[0]
    temp = work / "temp"
    temp.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))  # where the bench's work folder goes
        code = main(
            [
                "bench",
                "--video",
                str(clip.path),
                "--enroll",
                str(portrait),
                "--no-reference",
                "--threads",
                "1",
                "--detectors",
                "blazeface_full_range",
                "--gallery-size",
                "20",
                "--passes",
                "3",
                "--out",
                str(work / "out"),
            ]
        )
    assert code == 0
    assert list(temp.iterdir()) == [], "the bench left its gallery of enrolled faces behind"
    (json_path,) = (work / "out").glob("edge-bench-*.json")
    return json.loads(json_path.read_text()), json_path.with_suffix(".md").read_text()


def test_every_stage_is_timed(bench):
    results, _ = bench
    (run,) = results["runs"]
    assert set(STAGES) <= set(run["stages"]), f"missing stages: {set(STAGES) - set(run['stages'])}"
    for stage in STAGES:
        figures = run["stages"][stage]
        assert figures["calls"] >= 1 and 0 <= figures["median_ms"] <= figures["p95_ms"], stage
    frames = run["frames"]
    assert frames == 50  # 2 appearances of 20 frames, each followed by 5 empty ones: none dropped
    for stage in ("decode", "scene", "detect", "track"):
        assert run["stages"][stage]["calls"] == frames, stage


def test_throughput_latency_memory_and_faces(bench):
    results, _ = bench
    (run,) = results["runs"]
    assert run["fps"] > 0 and run["cpu_percent"] > 0
    assert 50 < run["peak_rss_mb"] <= run["process_peak_rss_mb"]
    assert 0.5 < run["faces_per_frame"] <= 1.0  # one portrait in the 40 frames it is shown
    camera = run["camera"]
    assert camera["frames"] + camera["frames_skipped"] == 50 and camera["pace_fps"] == 25
    assert 0 < camera["frame_latency_ms"]["p50"] <= camera["frame_latency_ms"]["p95"]
    assert camera["events"] >= 1, "the enrolled portrait never matched"
    assert 0 < camera["event_latency_ms"]["median_ms"] <= camera["event_latency_ms"]["p95_ms"]


def test_fps_is_the_median_of_the_throughput_passes(bench):
    results, table = bench
    (run,) = results["runs"]
    passes = run["fps_passes"]
    assert len(passes) == 3 and run["fps"] == sorted(passes)[1]
    assert f"| {run['fps']:.1f} ({min(passes):.0f}-{max(passes):.0f}) |" in table


def test_machine_and_gallery_in_the_header(bench):
    results, table = bench
    machine = results["machine"]
    for key in ("cpu", "cores", "python", "numpy", "tflite_runtime", "opencv"):
        assert machine[key], key
    assert results["gallery"]["enrolled"] == ["grace_hopper"]
    assert results["gallery"]["templates"] == 1 + 20 * 5
    assert f"{machine['cores']} cores" in table and machine["tflite_runtime"] in table
    assert "**edge full range, 1 thr" in table or "edge full range, 1 thr" in table
    assert not math.isnan(results["gallery"]["threshold"])


def test_a_missing_video_is_an_operator_error(tmp_path: Path, capsys):
    assert main(["bench", "--passes", "0", "--no-reference"]) == 1
    assert "--passes must be at least 1, not 0" in capsys.readouterr().err
    assert main(["bench", "--video", str(tmp_path / "none.mp4"), "--no-reference"]) == 1
    assert "no such video" in capsys.readouterr().err
