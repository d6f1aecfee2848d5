"""Simulated watchlists (`edge eval --watchlists`): galleries built and matched as the device does, a
stream of strangers with a known number of false matches counted exactly, and the device's
predictions for the same lists; then the command on a few real LFW people."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from support_cohort import cohort_for
from test_eval import lfw_subset, write_csv

from edge.central.evaluation.stats import significant
from edge.central.evaluation.watchlists import Device, Population, deploy, scratch_folder, simulate
from edge.central.modelcard.card import render
from edge.cli import main
from edge.config import load_settings
from edge.device.parts import operating_point
from edge.vision import load_manifest
from edge.vision.false_alerts import expected_false_alerts
from edge.vision.operating_point import MeasuredRate, OperatingPoint

EMBEDDER = "dlib_resnet_v1_int8"
KNOB = 0.25
# mixed: 0.1 per comparison, so 1,000 x 0.1 x the cohort's factor for 2 templates (about 195) per
# 1,000 scans, whose interval holds the stream's 200; bound: 0.09, below it
POINT = OperatingPoint(
    KNOB, None, None, None, "test", "per_template", MeasuredRate(0.1, (0.08, 0.12)), MeasuredRate(0.09, (0.07, 0.11))
)
# three pairs of lookalikes: each person's photos fall within the other's per-template threshold
PEOPLE = ["a", "a_twin", "b", "b_twin", "c", "c_twin"]
GROUP = {"a": "g1", "a_twin": "g1", "b": "g1", "b_twin": "g1", "c": "g2", "c_twin": "g2"}


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=128)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def stream() -> Population:
    """Two photos of each of `PEOPLE`, in the cohort's region of the descriptor space: a person's
    twin half their threshold from them, everyone else beyond twice any threshold (checked)."""
    cohort = cohort_for(EMBEDDER)
    rng = np.random.default_rng(7)
    centre = cohort.centroids.mean(axis=0)
    descriptors = []
    for _ in range(3):
        base = centre + 0.5 * unit(rng)
        twin = base + 0.5 * KNOB * cohort.scales(base[None].astype(np.float32))[0] * unit(rng)
        for person in (base, twin):
            descriptors += [person, person + 0.01 * unit(rng)]
    vectors = np.array(descriptors, np.float32)
    people = np.repeat(PEOPLE, 2)
    normalized = np.linalg.norm(vectors[:, None] - vectors[None], axis=2) / cohort.scales(vectors)[None, :]
    pair = np.repeat(np.arange(3), 4)
    assert (normalized[pair[:, None] == pair[None, :]] < 0.8 * KNOB).all()  # a person, their twin and the photos
    assert (normalized[pair[:, None] != pair[None, :]] > 2 * KNOB).all()
    return Population(vectors, people, np.array([GROUP[p] for p in people]), np.full(12, ""))


@pytest.fixture
def device(manifest):
    entry = manifest.get(EMBEDDER)
    with scratch_folder() as folder:
        yield Device(POINT, cohort_for(EMBEDDER), entry.model_id, entry.sha256, Path(folder))


def rows(population: Population, *people: str) -> np.ndarray:
    return np.flatnonzero(np.isin(population.people, people))


def test_a_list_alerts_on_exactly_the_twins_of_its_people(stream, device):
    enrolled = {"a": rows(stream, "a"), "b": rows(stream, "b")}
    outcome = deploy(device, stream, enrolled, rows(stream, "a_twin", "b_twin", "c", "c_twin"))
    assert outcome.scans == Counter({"g1": 4, "g2": 4})
    assert outcome.alerts == Counter({"g1": 4})  # both photos of each twin; c and c_twin are strangers to all
    assert outcome.templates == 4
    assert outcome.expected == expected_false_alerts(POINT, device.cohort, [2, 2])
    assert list(device.folder.iterdir()) == []  # the gallery is removed once matched
    # a twin on the list is no passer-by: nothing left to alert on
    both = deploy(device, stream, {"a": rows(stream, "a"), "a_twin": rows(stream, "a_twin")}, rows(stream, "c"))
    assert both.alerts.total() == 0 and both.scans == Counter({"g2": 2})


def test_lists_of_one_count_every_false_alert_and_predict_as_the_device(stream, device):
    result = simulate(device, stream, 1, 30, 2, seed=3)
    overall = result["overall"]
    assert (result["supported"], result["lists"], result["templates_per_list"]) == (True, 30, 2)
    # whoever is enrolled, the other five people's ten photos pass and the twin's two alert
    assert (overall["scans"], overall["alerts"]) == (300, 60)
    assert type(overall["scans"]) is type(overall["alerts"]) is int  # counts, as report.json shows them
    # the interval resamples whole lists: every list raised 2 alerts in 10 scans, so nothing varies
    assert overall["observed"] == {"per_1000": 200.0, "ci95": [200.0, 200.0]}
    expected = expected_false_alerts(POINT, device.cohort, [2])
    factor = device.cohort.person_factor(2, KNOB, "per_template")
    assert expected.mixed.per_1000 == pytest.approx(1000 * 0.1 * factor)
    for basis, e in (("mixed", expected.mixed), ("bound", expected.bound)):
        assert e.ci95 is not None and e.per_1000 is not None
        assert overall["predicted"][basis] == {
            "per_1000": significant(e.per_1000),
            "ci95": [significant(e.ci95[0]), significant(e.ci95[1])],
        }
    assert overall["in_mixed_ci95"] is overall["overlaps_mixed_ci95"] is overall["above_bound"] is True
    groups = result["groups"]
    assert sum(g["scans"] for g in groups.values()) == 300 and sum(g["alerts"] for g in groups.values()) == 60
    assert all(g["predicted"] == overall["predicted"] for g in groups.values())  # every list has two templates
    # per group the lists differ (a g2 person enrolled: g1's four passers-by raise nothing), and so does the interval
    for g in groups.values():
        lo, hi = g["observed"]["ci95"]
        assert lo < g["observed"]["per_1000"] < hi
        assert 1000 * g["alerts"] / g["scans"] == pytest.approx(g["observed"]["per_1000"], rel=1e-5)
    assert simulate(device, stream, 1, 30, 2, seed=3) == result  # the draws are the seed's


def test_a_list_as_large_as_the_set_is_not_simulated(stream, device):
    result = simulate(device, stream, 6, 10, 2, seed=0)
    assert result == {
        "size": 6,
        "supported": False,
        "reason": "needs more than 6 people with a descriptor in the set to leave passers-by; the most is 6",
    }


def test_eval_simulates_watchlists_of_real_people(data_dir, models_dir, tmp_path, capsys):
    rows = lfw_subset(data_dir, {"female_East_Asian": 3, "male_White": 3}, 3)
    csv_path = write_csv(tmp_path / "identities.csv", rows)
    out = tmp_path / "out"
    args = ["eval", "--identities", csv_path, "--root", data_dir, "--out", out]
    code = main([*map(str, args), "--watchlists", "1", "--watchlists", "5", "6", "--lists", "4"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    report = json.loads((out / "report.json").read_text())
    section = report["watchlists"]
    settings = load_settings()
    manifest = load_manifest(models_dir)
    point = operating_point(settings, manifest.get(manifest.default_embedder))
    assert section["operating_point"] == point.as_dict() and section["pools"] == "source"
    one, five, six = section["sizes"]
    assert one["overall"]["scans"] == 4 * 15 and five["overall"]["scans"] == 4 * 3  # 3 photos per passer-by
    assert one["templates_per_list"] == 2 and five["templates_per_list"] == 10
    expected = expected_false_alerts(point, cohort_for(manifest.default_embedder), [2] * 5)
    assert expected.mixed.per_1000 is not None and expected.bound.per_1000 is not None
    assert five["overall"]["predicted"]["mixed"]["per_1000"] == significant(expected.mixed.per_1000)
    assert five["overall"]["predicted"]["bound"]["per_1000"] == significant(expected.bound.per_1000)
    for entry in (one, five):
        assert set(entry["groups"]) == {"female_East_Asian", "male_White"}
        assert sum(g["scans"] for g in entry["groups"].values()) == entry["overall"]["scans"]
        assert 0 <= entry["overall"]["alerts"] <= entry["overall"]["scans"]
    assert six["supported"] is False and "the most is 6" in six["reason"]
    summary = json.loads(printed.out)["watchlists"]
    assert summary["1"]["scans"] == 60 and summary["6"] == six["reason"]
    md = (out / "report.md").read_text()
    assert "## Simulated watchlists" in md and "### Watchlists of 5" in md and "Not simulated: needs more" in md
    card = render(report, "out/report.json", "0" * 64, "card.md")
    assert "Simulated on the evaluation's people" in card and "| 6 people | needs more than 6 people" in card
    assert "--watchlists 1 5 6 --lists 4 --photos 2 --seed 0" in card  # the card's commands redo the simulation


def test_watchlists_need_an_identities_file(tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    assert main(["eval", "--pairs", str(pairs), "--out", str(tmp_path / "out"), "--watchlists", "5"]) == 1
    assert "--watchlists draws people and their photos from an identities file" in capsys.readouterr().err
