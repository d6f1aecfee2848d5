"""The trial report reproduces a hand-made event and verdict log, number by number.

Three devices on two sites over two UTC days, 12-hour windows. cam-b's window 3 never arrived
(one alert of it did); cam-a's threshold changed at the start of day two. Verdicts in two stages:
the operator's adjudication, then, for four alerts, what engaging the person found. Every expected figure
below was worked out by hand from the log; the 95% intervals from the Wilson formula written out
here, not from the code under test. Runs on SQLite and PostgreSQL (`db_url`).
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.central.trial.intake import SCHEMA, DeadLetter
from edge.central.trial.report import build_report, write_report
from edge.central.trial.report.data import Alert, Selection, TrialData, Verdict, Window
from edge.central.trial.report.load import load
from edge.central.trial.store import TrialStore
from edge.link.payloads import MatchEvent, StatsPayload, StatusPayload, Versions

DAY1 = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
END = DAY1 + 48 * HOUR  # the end of the last window: the report is made then
DEVICES = {"cam-a": "north", "cam-b": "north", "cam-c": "south"}

# device -> sequence -> (frames, scans, quality_rejected, matches); window s covers DAY1 + 12 h * (s - 1)
WINDOWS = {
    "cam-a": {1: (10000, 1000, 50, 2), 2: (12000, 1500, 60, 1), 3: (9000, 800, 40, 1), 4: (11000, 1200, 30, 2)},
    "cam-b": {1: (5000, 400, 20, 1), 2: (6000, 600, 25, 0), 4: (7000, 700, 35, 1)},  # 3 is missing
    "cam-c": {1: (8000, 900, 45, 1), 2: (8000, 1100, 55, 1), 3: (4000, 500, 10, 0), 4: (4000, 500, 10, 1)},
}
# alert name -> (device, hours after DAY1, verdicts in the order given: (outcome, hours after DAY1))
ALERTS = {
    "a1": ("cam-a", 3, [("true_alert", 30), ("confirmed_true", 31)]),
    # adjudication changed after the engagement: the latest of each stage counts
    "a3": ("cam-a", 15, [("true_alert", 30), ("confirmed_false", 35), ("false_alert", 40)]),
    "a2": ("cam-a", 9, [("false_alert", 30)]),
    "a4": ("cam-a", 26, [("true_alert", 40)]),
    "a5": ("cam-a", 37, [("not_adjudicated", 40)]),
    "a6": ("cam-a", 44, []),
    "b1": ("cam-b", 4, [("false_alert", 30)]),
    "b2": ("cam-b", 29, [("true_alert", 40), ("confirmed_true", 41)]),  # in the missing window
    "b3": ("cam-b", 39, []),
    "c1": ("cam-c", 1, [("true_alert", 30)]),
    "c2": ("cam-c", 13, [("true_alert", 30), ("confirmed_false", 31), ("confirmed_true", 35)]),  # engagement changed
    "c3": ("cam-c", 46, [("false_alert", 50)]),
}
# (device, hours after DAY1, state, threshold, fmr, expected false alerts per 1,000 scans, config version)
STATUSES = [
    ("cam-a", -1, "online", 0.40, 0.00004, 2.0, 1),
    ("cam-b", -1, "online", 0.40, 0.00004, 2.0, 1),
    ("cam-c", -1, "online", 0.45, 0.00002, 1.0, 1),
    ("cam-a", 24, "online", 0.35, 0.00002, 1.0, 2),  # the threshold change, at a window boundary
    ("cam-c", 47.99, "offline", None, None, None, None),  # a last will without details changes nothing
]

# group -> (windows, missing, uptime h, frames, scans, quality_rejected, alerts, matches in windows,
#           true alerts, false alerts, not adjudicated, of which no verdict, confirmed true, confirmed false,
#           predicted false alerts), all worked out by hand
TRIAL = (11, 1, 132, 84000, 9200, 380, 12, 11, 5, 4, 3, 2, 3, 1, 13.4)
SITES = {
    "north": (7, 1, 84, 60000, 6200, 260, 9, 8, 3, 3, 3, 2, 2, 1, 10.4),
    "south": (4, 0, 48, 24000, 3000, 120, 3, 3, 2, 1, 0, 0, 1, 0, 3.0),
}
DEVICE_FIGURES = {
    "cam-a": (4, 0, 48, 42000, 4500, 180, 6, 6, 2, 2, 2, 1, 1, 1, 7.0),
    "cam-b": (3, 1, 36, 18000, 1700, 80, 3, 2, 1, 1, 1, 1, 1, 0, 3.4),
    "cam-c": (4, 0, 48, 24000, 3000, 120, 3, 3, 2, 1, 0, 0, 1, 0, 3.0),
}
DAYS = {
    "2026-06-01": (6, 0, 72, 49000, 5500, 255, 6, 6, 3, 3, 0, 0, 2, 1, 9.0),
    "2026-06-02": (5, 1, 60, 35000, 3700, 125, 6, 5, 2, 1, 3, 2, 1, 0, 4.4),
}
ROWS = {
    ("cam-a", "2026-06-01"): (2, 0, 24, 22000, 2500, 110, 3, 3, 1, 2, 0, 0, 1, 1, 5.0),
    ("cam-a", "2026-06-02"): (2, 0, 24, 20000, 2000, 70, 3, 3, 1, 0, 2, 1, 0, 0, 2.0),
    ("cam-b", "2026-06-01"): (2, 0, 24, 11000, 1000, 45, 1, 1, 0, 1, 0, 0, 0, 0, 2.0),
    ("cam-b", "2026-06-02"): (1, 1, 12, 7000, 700, 35, 2, 1, 1, 0, 1, 1, 1, 0, 1.4),
    ("cam-c", "2026-06-01"): (2, 0, 24, 16000, 2000, 100, 2, 2, 2, 0, 0, 0, 1, 0, 2.0),
    ("cam-c", "2026-06-02"): (2, 0, 24, 8000, 1000, 20, 1, 1, 0, 1, 0, 0, 0, 0, 1.0),
}


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval, written out: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    z = 1.959963984540054
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def _event_id(name: str) -> str:
    n = int.from_bytes(name.encode(), "big")
    return f"{n:012x}"[-12:] + "4000" + "8" + f"{n:015x}"[-15:]


def _hours(h: float) -> datetime:
    return DAY1 + timedelta(hours=h)


def _traffic() -> list:
    out: list = []
    for device, windows in WINDOWS.items():
        for seq, (frames, scans, rejected, matches) in windows.items():
            start = _hours(12 * (seq - 1))
            out.append(
                StatsPayload(
                    window_id=f"boot-{device}-{seq:06d}",
                    device_id=device,
                    site=DEVICES[device],
                    window_start=start,
                    window_end=start + 12 * HOUR,
                    frames=frames,
                    frames_dropped=0,
                    detections=frames // 2,
                    scans=scans,
                    quality_rejected=rejected,
                    matches=matches,
                    fps=frames / 43200,
                    latency_ms_p50=20.0,
                    latency_ms_p95=30.0,
                )
            )
    for name, (device, hour, _) in ALERTS.items():
        seq = int(hour // 12) + 1
        out.append(
            MatchEvent(
                event_id=_event_id(name),
                ts=_hours(hour),
                device_id=device,
                site=DEVICES[device],
                track_id=hour,
                identity_id="p-7",
                score=0.3,
                threshold=0.4,
                metric="cosine",
                model_id="embedder-1",
                gallery_version="g-12",
                window_id=f"boot-{device}-{seq:06d}",
            )
        )
    for device, hour, state, threshold, fmr, expected, version in STATUSES:
        details = (
            {}
            if threshold is None
            else {
                "threshold": threshold,
                "fmr": fmr,
                "gallery_identities": 50,
                "false_alerts_per_1000_mixed": expected,
                "false_alerts_per_1000_bound": 40 * expected,  # a crowd of the worst group
                "config_version": version,
            }
        )
        versions = Versions(
            software="0.1.0",
            detector_model_id="det-1",
            embedder_model_id="embedder-1",
            embedder_sha256="ab12cd34",
            gallery_version="g-12",
        )
        out.append(
            StatusPayload(
                state=state,
                device_id=device,
                site=DEVICES[device],
                ts=_hours(hour),
                started_at=_hours(-2),
                versions=versions,
                details=details,
            )
        )
    return out


@pytest.fixture
def store(db_url: str):
    with TrialStore.open(db_url) as store:
        traffic = _traffic()
        store.add_many(traffic)
        assert not any(store.add_many(traffic[::3])), "a repeat is stored once"
        for name, (_, _, verdicts) in ALERTS.items():
            for outcome, hour in verdicts:
                store.add_verdict(_event_id(name), outcome, by="ops", at=_hours(hour))
        yield store


def _check_rate(rate: dict, k: int, n: int) -> None:
    """A precision: k / n with the Wilson interval written out here, or unknown without a denominator."""
    assert (rate["k"], rate["n"]) == (k, n)
    if n:
        assert rate["value"] == pytest.approx(k / n)
        assert rate["ci95"] == pytest.approx(list(wilson(k, n)))
    else:
        assert rate["value"] is None and rate["ci95"] is None


def _check(figures: dict, expected: tuple) -> None:
    (windows, missing, uptime_h, frames, scans, rejected, alerts, matches) = expected[:8]
    true, false, not_adjudicated, no_verdict, confirmed_true, confirmed_false, predicted = expected[8:]
    assert figures["windows"] == windows
    assert figures["missing_windows"] == missing
    assert figures["uptime_s"] == uptime_h * 3600
    assert (figures["frames"], figures["scans"], figures["quality_rejected"]) == (frames, scans, rejected)
    assert (figures["alerts"], figures["matches_in_windows"]) == (alerts, matches)
    assert true + false + not_adjudicated == alerts, "the hand-made figures: every alert adjudicated or not"
    assert (figures["true_alert"], figures["false_alert"], figures["not_adjudicated"]) == (true, false, not_adjudicated)
    assert (figures["no_verdict"], figures["adjudicated"]) == (no_verdict, true + false)
    assert (figures["confirmed_true"], figures["confirmed_false"]) == (confirmed_true, confirmed_false)
    assert figures["engaged"] == confirmed_true + confirmed_false
    assert figures["alerts_per_1000_scans"] == pytest.approx(1000 * alerts / scans)
    assert figures["predicted_false_alerts"] == pytest.approx(predicted)
    assert figures["predicted_false_alerts_bound"] == pytest.approx(40 * predicted)
    assert figures["scans_without_prediction"] == 0
    _check_rate(figures["precision_before_engagement"], true, true + false)
    _check_rate(figures["precision_after_engagement"], confirmed_true, confirmed_true + confirmed_false)
    fa = figures["false_alerts_per_1000_scans"]
    assert fa["value"] == pytest.approx(1000 * false / scans)
    assert fa["ci95"] == pytest.approx([1000 * b for b in wilson(false, scans)])


def _headline() -> str:
    lo, hi = wilson(5, 9)
    elo, ehi = wilson(3, 4)
    return (
        "9,200 faces scanned, 12 alerts: 5 true alerts, 4 false alerts, 3 not adjudicated (2 without a verdict); "
        "4 engaged: 3 confirmed true, 1 confirmed false; 1 alert per 767 scans; "
        f"precision before engagement 55.6% ({100 * lo:.1f}-{100 * hi:.1f}%, 5 of 9 adjudicated), "
        f"after engagement 75.0% ({100 * elo:.1f}-{100 * ehi:.1f}%, 3 of 4 engaged); "
        "1 window missing, their scans unknown"
    )


def test_wilson_by_hand_matches_a_published_value() -> None:
    """The test's own formula against a textbook value (Newcombe 1998: 81/263 -> 0.2553-0.3662)."""
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_every_number_of_the_report(store: TrialStore) -> None:
    report = build_report(load(store, Selection()), Selection(), now=END)
    assert report["headline"] == _headline()
    _check(report["trial"], TRIAL)
    assert {s["site"] for s in report["sites"]} == set(SITES)
    for s in report["sites"]:
        _check(s, SITES[s["site"]])
    assert [d["device_id"] for d in report["devices"]] == list(DEVICE_FIGURES)
    for d in report["devices"]:
        assert d["site"] == DEVICES[d["device_id"]]
        _check(d, DEVICE_FIGURES[d["device_id"]])
    assert [d["day"] for d in report["days"]] == list(DAYS)
    for d in report["days"]:
        _check(d, DAYS[d["day"]])
    assert [(r["device_id"], r["day"]) for r in report["rows"]] == list(ROWS)
    for r in report["rows"]:
        _check(r, ROWS[(r["device_id"], r["day"])])
    # the missing window is listed, and its scans are not a zero anywhere: cam-b's day 2 has one window
    assert report["missing_windows"] == [
        {
            "site": "north",
            "device_id": "cam-b",
            "day": "2026-06-02",
            "first": "boot-cam-b-000003",
            "last": "boot-cam-b-000003",
            "count": 1,
        }
    ]
    settings = [(p["device_id"], p["from"], p["to"], p["threshold"], p["config_version"]) for p in report["periods"]]
    assert settings == [
        ("cam-a", _hours(-1).isoformat(), _hours(24).isoformat(), 0.40, 1),
        ("cam-a", _hours(24).isoformat(), None, 0.35, 2),
        ("cam-b", _hours(-1).isoformat(), None, 0.40, 1),
        ("cam-c", _hours(-1).isoformat(), None, 0.45, 1),
    ]
    assert {p["embedder_model_id"] for p in report["periods"]} == {"embedder-1"}
    assert {p["gallery_version"] for p in report["periods"]} == {"g-12"}


def test_a_selection_keeps_the_missing_window_and_what_was_in_force(store: TrialStore) -> None:
    """cam-b on day two alone: its one window, two alerts, the gap before it, settings from day one."""
    selection = Selection(DAY1.date() + timedelta(days=1), DAY1.date() + timedelta(days=1), "north", "cam-b")
    report = build_report(load(store, selection), selection, now=END)
    _check(report["trial"], ROWS[("cam-b", "2026-06-02")])
    assert [m["first"] for m in report["missing_windows"]] == ["boot-cam-b-000003"]
    assert [(p["device_id"], p["threshold"]) for p in report["periods"]] == [("cam-b", 0.40)]
    lo, hi = wilson(1, 1)
    assert report["headline"] == (
        "700 faces scanned, 2 alerts: 1 true alert, 0 false alerts, 1 not adjudicated (1 without a verdict); "
        "1 engaged: 1 confirmed true, 0 confirmed false; 1 alert per 350 scans; "
        f"precision before engagement 100.0% ({100 * lo:.1f}-{100 * hi:.1f}%, 1 of 1 adjudicated), "
        f"after engagement 100.0% ({100 * lo:.1f}-{100 * hi:.1f}%, 1 of 1 engaged); "
        "1 window missing, their scans unknown"
    )


def test_files_agree_with_the_report(store: TrialStore, tmp_path: Path) -> None:
    report = build_report(load(store, Selection()), Selection(), now=END)
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [(r["device_id"], r["day"]) for r in rows] == list(ROWS)
    b2 = rows[3]
    assert (b2["scans"], b2["missing_windows"], b2["alerts"], b2["true_alert"], b2["no_verdict"]) == (
        "700",
        "1",
        "2",
        "1",
        "1",
    )
    assert (b2["adjudicated"], b2["confirmed_true"], b2["engaged"]) == ("1", "1", "1")
    assert b2["precision_before_engagement"] == "1.0" and b2["false_alerts_per_1000_scans"] == "0.0"
    assert rows[1]["precision_before_engagement"] == "1.0" and rows[4]["precision_before_engagement"] == "1.0"
    assert rows[5]["precision_before_engagement"] == "0.0"
    assert rows[0]["precision_after_engagement"] == "0.5" and rows[3]["precision_after_engagement"] == "1.0"
    lo, hi = wilson(1, 2)
    assert (
        float(rows[0]["precision_after_engagement_ci95_lo"]),
        float(rows[0]["precision_after_engagement_ci95_hi"]),
    ) == (
        pytest.approx(lo),
        pytest.approx(hi),
    )
    assert rows[1]["precision_after_engagement"] == "" and rows[1]["engaged"] == "0", "no denominator: no rate"
    markdown = (tmp_path / "report.md").read_text()
    assert f"**{_headline()}.**" in markdown
    assert "| north | cam-b | 2026-06-02 | boot-cam-b-000003 |" in markdown


def test_command_writes_the_four_files(db_url: str, store: TrialStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        # --to: the trial's last day, so that nobody is silent at the end (made long after, all would be)
        [sys.executable, "-m", "edge.cli", "trial", "report", "--db", db_url, "--to", "2026-06-02", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == _headline()
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.html", "report.json", "report.md"]


def test_command_refuses_a_bad_day_and_a_bad_database(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "edge.cli", "trial", "report", "--out", str(tmp_path)]
    bad_day = subprocess.run([*base, "--db", "x.db", "--from", "June"], capture_output=True, text=True, timeout=60)
    assert bad_day.returncode == 2 and "YYYY-MM-DD" in bad_day.stderr
    bad_db = subprocess.run([*base, "--db", "mysql://h/db"], capture_output=True, text=True, timeout=60)
    assert bad_db.returncode == 1 and "Traceback" not in bad_db.stderr
    assert len(bad_db.stderr.strip().splitlines()) == 1
    for db, why in (("sqlite://trial.db", "three slashes"), (str(tmp_path / "trail.db"), "no trial database at")):
        done = subprocess.run([*base, "--db", db], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and why in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "trail.db").exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_page_in_headless_chromium(store: TrialStore, tmp_path: Path, chromium: str) -> None:
    """The page shows the headline and three plots, and references nothing outside itself."""
    browser = chromium
    write_report(build_report(load(store, Selection()), Selection(), now=END), tmp_path)
    page = tmp_path / "report.html"
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400"]
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000, "the screenshot is (nearly) empty"
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert _headline() in dom
    assert len(re.findall(r'<figure class="plot" id="plot-[a-z-]+"><svg', dom)) == 3
    assert "boot-cam-b-000003" in dom


def test_documented_sample_headline_is_this_log() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "pages" / "trials.md").read_text()
    section = page.split("# Run a field trial", 1)[1]
    quoted = " ".join(line[2:] for line in section.splitlines() if line.startswith("> "))
    assert _headline() in quoted


def test_an_empty_trial_says_so(tmp_path: Path) -> None:
    """No window, no alert: zero scans is what was received, and precision is unknown, not 0 or 100%."""
    report = build_report(TrialData(), Selection())
    assert report["headline"] == (
        "0 faces scanned, 0 alerts: 0 true alerts, 0 false alerts, 0 not adjudicated (0 without a verdict); "
        "0 engaged: 0 confirmed true, 0 confirmed false; no alert; "
        "precision before engagement unknown (none adjudicated), after engagement unknown (none engaged)"
    )
    assert report["trial"]["alerts_per_1000_scans"] is None
    write_report(report, tmp_path)
    assert (tmp_path / "report.csv").read_text().count("\n") == 1


def test_two_stages_counted_on_a_small_set_in_every_format(tmp_path: Path) -> None:
    """Five alerts of one device, verdicts by hand: x1 adjudicated true, then engaged: confirmed
    true; x2 engaged only (as a verdict `confirmed` of the earlier vocabulary became): confirmed
    true, not adjudicated; x3 false, then re-adjudicated true, engaged twice: confirmed true then
    false (the latest counts); x4 false alert; x5 no verdict. So: 2 true alerts, 1 false alert, 2
    not adjudicated (1 without a verdict), 3 engaged (2 confirmed true, 1 false); precision 2/3
    before engagement and 2/3 after."""
    alerts = [Alert(f"x{i}", "north", "cam-x", DAY1 + i * HOUR) for i in range(1, 6)]
    given = [
        ("x1", "true_alert", 10),
        ("x1", "confirmed_true", 11),
        ("x2", "confirmed_true", 11),
        ("x3", "false_alert", 10),
        ("x3", "confirmed_true", 12),
        ("x3", "true_alert", 13),
        ("x3", "confirmed_false", 14),
        ("x4", "false_alert", 10),
    ]
    verdicts = [Verdict(e, outcome, "ops", DAY1 + h * HOUR) for e, outcome, h in given]
    windows = [Window("b-000001", "north", "cam-x", DAY1, DAY1 + 12 * HOUR, 5000, 500, 0, 5)]
    report = build_report(TrialData(windows, alerts, verdicts), Selection(), now=DAY1 + 12 * HOUR)
    trial = report["trial"]
    counts = ("true_alert", "false_alert", "not_adjudicated", "no_verdict", "adjudicated")
    assert [trial[k] for k in counts] == [2, 1, 2, 1, 3]
    assert [trial[k] for k in ("confirmed_true", "confirmed_false", "engaged")] == [2, 1, 3]
    _check_rate(trial["precision_before_engagement"], 2, 3)
    _check_rate(trial["precision_after_engagement"], 2, 3)
    lo, hi = wilson(2, 3)
    interval = f"66.7% ({100 * lo:.1f}-{100 * hi:.1f}%"
    assert report["headline"] == (
        "500 faces scanned, 5 alerts: 2 true alerts, 1 false alert, 2 not adjudicated (1 without a verdict); "
        "3 engaged: 2 confirmed true, 1 confirmed false; 1 alert per 100 scans; "
        f"precision before engagement {interval}, 2 of 3 adjudicated), after engagement {interval}, 2 of 3 engaged)"
    )
    write_report(report, tmp_path)
    (row,) = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [row[k] for k in (*counts, "confirmed_true", "confirmed_false", "engaged")] == [
        "2",
        "1",
        "2",
        "1",
        "3",
        "2",
        "1",
        "3",
    ]
    assert float(row["precision_before_engagement"]) == float(row["precision_after_engagement"]) == pytest.approx(2 / 3)
    assert float(row["precision_after_engagement_ci95_lo"]) == pytest.approx(lo)
    assert json.loads((tmp_path / "report.json").read_text())["trial"]["precision_after_engagement"]["n"] == 3
    for name in ("report.md", "report.html"):  # the table shows each precision with its denominator
        text = (tmp_path / name).read_text()
        assert f"{interval}), 2/3" in text and "confirmed true" in text and "not adjudicated" in text, name


def _window(device: str, boot: str, seq: int, start: datetime, scans: int = 10) -> StatsPayload:
    return StatsPayload(
        window_id=f"{boot}-{seq:06d}",
        device_id=device,
        site="north",
        window_start=start,
        window_end=start + HOUR,
        frames=100,
        frames_dropped=0,
        detections=50,
        scans=scans,
        quality_rejected=0,
        matches=0,
        fps=100 / 3600,
        latency_ms_p50=1.0,
        latency_ms_p95=2.0,
    )


def test_a_gap_of_a_billion_windows_is_one_row(db_url: str, tmp_path: Path) -> None:
    """Window sequences 1 and 999,999,999 of one device once made the report build an object per
    missing sequence (MemoryError at 3.5 GB): now one row per run of missing windows, whatever its length."""
    with TrialStore.open(db_url) as store:
        store.add_many([_window("cam-x", "b", 1, DAY1), _window("cam-x", "b", 999_999_999, DAY1 + HOUR)])
        report = build_report(load(store, Selection()), Selection(), now=DAY1 + 2 * HOUR)
    assert report["missing_windows"] == [
        {
            "site": "north",
            "device_id": "cam-x",
            "day": "2026-06-01",
            "first": "b-000002",
            "last": "b-999999998",
            "count": 999_999_997,
        }
    ]
    assert report["trial"]["missing_windows"] == 999_999_997
    assert "999,999,997 windows missing" in report["headline"]
    write_report(report, tmp_path)
    assert (tmp_path / "report.md").stat().st_size < 20_000


def test_device_strings_are_shown_as_text_in_every_format(store: TrialStore, tmp_path: Path) -> None:
    """A device's own strings (its gallery version, its window ids) reach the tables: Markdown and
    HTML show them as text, never as markup."""
    hostile = "<script>alert(1)</script>|x"
    versions = Versions(
        software="1", detector_model_id="d", embedder_model_id="e", embedder_sha256="abcd1234", gallery_version=hostile
    )
    store.add_many(
        [
            StatusPayload(state="online", device_id="cam-x", site="north", ts=DAY1, started_at=DAY1, versions=versions),
            _window("cam-x", "<img/src=x>", 1, DAY1),
            _window("cam-x", "<img/src=x>", 3, DAY1 + 2 * HOUR),
        ]
    )
    write_report(build_report(load(store, Selection()), Selection(), now=DAY1 + 3 * HOUR), tmp_path)
    for name in ("report.md", "report.html"):
        text = (tmp_path / name).read_text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img/src=x&gt;-000002" in text, name
        assert "<script" not in text.lower() and "<img" not in text.lower(), name
    assert "&lt;/script&gt;\\|x" in (tmp_path / "report.md").read_text(), "a pipe cannot split a Markdown cell"


def test_set_aside_messages_and_silent_devices_are_in_the_headline(store: TrialStore, tmp_path: Path) -> None:
    """What the figures cannot include is said where nobody misses it: messages the collector set
    aside, and a device from which nothing was received for more than two window lengths."""
    letter = DeadLetter("edge/north/cam-x/stats", b'{"frames": 1e400}', SCHEMA, "stats: frames: not finite")
    store.add_many([_window("cam-x", "b", 1, DAY1), _window("cam-y", "b", 1, DAY1 + 3 * HOUR)], [letter])
    report = build_report(load(store, Selection()), Selection(), now=DAY1 + 4 * HOUR)
    assert report["headline"].endswith(
        "; 1 message set aside, never stored; 1 device silent at the end (nothing received since)"
    )
    assert [(s["reason"], s["count"], s["example"]) for s in report["set_aside"]] == [
        (SCHEMA, 1, "stats: frames: not finite")
    ]
    assert [(d["device_id"], d["silent_h"]) for d in report["silent_devices"]] == [("cam-x", 3.0)]
    write_report(report, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "## Messages set aside" in markdown and "## Silent devices" in markdown
