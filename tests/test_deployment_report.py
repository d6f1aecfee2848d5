"""A deployment's report reproduces a hand-made log, before and after its retention purge.

Deployment `market-day` on north/cam-1 and north/cam-2, stated 08:00 to 18:00 UTC, ended early
at 16:00, retention 7 days. Beside it, the same devices before and after its period, and
north/cam-3, not in it. Windows, alerts and verdicts go through the trial store's real intake
(payload objects); the deployment through `watchlist.create` and `watchlist.end`; its watchlist
rows, a delivery and a negative-feedback change are written as those parts leave them, at chosen
times (the gate, sealing and feedback are tested on their own). Every expected figure was worked
out by hand; the 95% intervals come from the Wilson formula written out in test_trial_report.
Runs on SQLite and PostgreSQL (`db_url`).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest.importorskip("sqlalchemy", reason="the central extra is not installed")

from test_trial_report import _event_id, wilson  # noqa: E402

from edge.central.deployments import report as deployment_report  # noqa: E402
from edge.central.deployments import (
    retention,  # noqa: E402
    watchlist,  # noqa: E402
)
from edge.central.deployments.retention import purge_due  # noqa: E402
from edge.central.deployments.schema import adjustments, deliveries, figures, migrate, people, photos  # noqa: E402
from edge.central.deployments.watchlist import DeploymentError, DeploymentSpec  # noqa: E402
from edge.central.fleet.bundle import issue_device  # noqa: E402
from edge.central.fleet.folder import FleetDir  # noqa: E402
from edge.central.trial.schema import events, verdicts, windows  # noqa: E402
from edge.central.trial.store import TrialStore  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.link.payloads import MatchEvent, StatsPayload  # noqa: E402

DAY = datetime(2026, 6, 1, tzinfo=UTC)
START, END, ENDED = DAY + timedelta(hours=8), DAY + timedelta(hours=18), DAY + timedelta(hours=16)
RETENTION_DAYS = 7
PURGE_DUE = ENDED + timedelta(days=RETENTION_DAYS)

# device -> sequence -> (start hour, scans); one-hour windows; cam-1's sequence 4 (10:00) never arrived
WINDOWS = {
    "cam-1": {1: (7, 100), 2: (8, 200), 3: (9, 300), 5: (11, 400), 6: (16, 500)},  # 07:00 and 16:00 outside
    "cam-2": {1: (8, 250), 2: (12, 350), 3: (15, 150)},
    "cam-3": {1: (9, 1000), 2: (10, 1000)},  # not in the deployment
}
# alert -> (device, hours after midnight, threshold, template threshold, verdicts in order)
ALERTS = {
    "e1": ("cam-1", 7.5, 0.40, None, ["false_alert"]),  # before the start
    "e2": ("cam-1", 8.5, 0.40, None, ["true_alert", "confirmed_true"]),
    "e3": ("cam-1", 9.25, 0.40, None, ["false_alert"]),
    "e4": ("cam-1", 11.2, 0.40, None, ["true_alert", "confirmed_false"]),
    "e5": ("cam-1", 16.5, 0.40, None, ["true_alert"]),  # after the early end
    "f1": ("cam-2", 8.1, 0.45, 0.42, ["not_adjudicated"]),
    "f2": ("cam-2", 12.7, 0.45, 0.42, []),
    "f3": ("cam-2", 15.99, 0.45, 0.42, ["true_alert", "false_alert"]),  # the latest adjudication counts
    "f4": ("cam-2", 15.3, 0.45, 0.42, ["true_alert"]),
    "g1": ("cam-3", 9.5, 0.40, None, ["false_alert"]),  # another device
}
INSIDE = {"e2", "e3", "e4", "f1", "f2", "f3", "f4"}

# worked out by hand: windows 08:00-15:00 of cam-1 (200 + 300 + 400) and cam-2 (250 + 350 + 150)
SCANS, ALERT_COUNT, WINDOW_COUNT, MISSING = 1650, 7, 6, 1
TRUE, FALSE, NOT_ADJUDICATED, NO_VERDICT = 3, 2, 2, 1  # e2 e4 f4 | e3 f3 | f1 f2 | f2
CONFIRMED_TRUE, CONFIRMED_FALSE = 1, 1  # e2 | e4
PER_DEVICE = {"cam-1": (900, 3, 3, 1), "cam-2": (750, 4, 3, 0)}  # scans, alerts, windows, missing


def _hours(h: float) -> datetime:
    return DAY + timedelta(hours=h)


def _traffic() -> list:
    out: list = []
    for device, sequences in WINDOWS.items():
        for seq, (hour, scans) in sequences.items():
            out.append(
                StatsPayload(
                    window_id=f"boot-{device}-{seq:06d}",
                    device_id=device,
                    site="north",
                    window_start=_hours(hour),
                    window_end=_hours(hour + 1),
                    frames=10 * scans,
                    frames_dropped=0,
                    detections=5 * scans,
                    scans=scans,
                    quality_rejected=scans // 10,
                    matches=1,
                    fps=10.0,
                    latency_ms_p50=20.0,
                    latency_ms_p95=30.0,
                )
            )
    for name, (device, hour, threshold, template_threshold, _) in ALERTS.items():
        out.append(
            MatchEvent(
                event_id=_event_id(name),
                ts=_hours(hour),
                device_id=device,
                site="north",
                track_id=int(hour * 100),
                identity_id="p-1",
                score=threshold - 0.05,
                threshold=threshold,
                template_threshold=template_threshold,
                metric="euclidean",
                model_id="embedder-1",
                gallery_version="g-1",
                window_id=f"boot-{device}-000001",  # not read by the report
            )
        )
    return out


@pytest.fixture
def fleet(tmp_path: Path) -> FleetDir:
    folder = tmp_path / "fleet"
    assert main(["fleet", "init", str(folder)]) == 0
    fleet = FleetDir(folder)
    for device in ("cam-1", "cam-2"):
        issue_device(fleet, "north", device, tmp_path / "certs" / device)
    return fleet


def _watchlist_rows(engine: sa.Engine) -> None:
    """Three people as `add_person` and `remove_person` leave them: p1 listed to the end, p2
    removed at noon, p3 expired at 14:00; p1 with one (sealed) photo."""
    rows = [
        ("p1", 7, None, END),
        ("p2", 9, _hours(12), END),
        ("p3", 10, None, _hours(14)),
    ]
    with engine.begin() as connection:
        for identity, added, removed, expires in rows:
            person = connection.execute(
                people.insert().returning(people.c.id),
                {
                    "deployment": "market-day",
                    "identity_id": identity,
                    "name": identity.upper(),
                    "reason": "missing since Monday",
                    "added_by": "ada",
                    "added_at": _hours(added),
                    "expires_at": expires,
                    "removed_at": removed,
                },
            ).scalar_one()
            if removed is None:
                connection.execute(
                    photos.insert(),
                    {"person_id": person, "file_name": "a.jpg", "sealed_photo": b"x", "sealed_template": b"y"},
                )
        connection.execute(
            deliveries.insert(),
            {
                "deployment": "market-day",
                "device": "north/cam-1",
                "gallery_version": "g-1",
                "people": 3,
                "reason": "start",
                "delivered_by": "ada",
                "delivered_at": START,
            },
        )
        connection.execute(
            adjustments.insert(),
            {
                "deployment": "market-day",
                "identity_id": "p1",
                "template_id": "0123456789abcdef",
                "kind": "tighten",
                "factor": 0.9,
                "threshold_before": 0.42,
                "threshold_after": 0.378,
                "event_id": _event_id("e3"),
                "made_by": "bob",
                "made_at": _hours(10),
            },
        )


@pytest.fixture
def store(db_url: str, fleet: FleetDir):
    with TrialStore.open(db_url, also=(migrate,)) as store:
        store.add_many(_traffic())
        for name, (_, hour, _, _, outcomes) in ALERTS.items():
            for i, outcome in enumerate(outcomes):
                store.add_verdict(_event_id(name), outcome, by="ops", at=_hours(hour + 0.01 * (i + 1)))
        spec = DeploymentSpec(
            "market-day",
            ("north/cam-1", "north/cam-2"),
            START,
            END,
            "find two missing people at the market",
            "Supt. A. Example",
            "ada",
            RETENTION_DAYS,
            0.0001,
        )
        watchlist.create(store.engine, spec, fleet)
        _watchlist_rows(store.engine)
        watchlist.end(store.engine, "market-day", at=ENDED)
        yield store


def _check_rate(rate: dict, k: int, n: int, scale: int = 1) -> None:
    assert (rate["k"], rate["n"]) == (k, n)
    assert rate["value"] == pytest.approx(scale * k / n)
    assert rate["ci95"] == pytest.approx([scale * b for b in wilson(k, n)])


def _check_figures(report: dict) -> None:
    t = report["trial"]
    assert (t["windows"], t["missing_windows"], t["scans"], t["alerts"]) == (WINDOW_COUNT, MISSING, SCANS, ALERT_COUNT)
    assert (t["true_alert"], t["false_alert"], t["not_adjudicated"], t["no_verdict"]) == (
        TRUE,
        FALSE,
        NOT_ADJUDICATED,
        NO_VERDICT,
    )
    assert (t["confirmed_true"], t["confirmed_false"]) == (CONFIRMED_TRUE, CONFIRMED_FALSE)
    _check_rate(t["precision_before_engagement"], TRUE, TRUE + FALSE)
    _check_rate(t["precision_after_engagement"], CONFIRMED_TRUE, CONFIRMED_TRUE + CONFIRMED_FALSE)
    _check_rate(t["false_alerts_per_1000_scans"], FALSE, SCANS, scale=1000)
    assert t["false_alerts_per_1000_scans"]["value"] == pytest.approx(1.2121212)
    devices = {d["device_id"]: (d["scans"], d["alerts"], d["windows"], d["missing_windows"]) for d in report["devices"]}
    assert devices == PER_DEVICE, "cam-3 and everything outside the period left out"
    assert [(m["device_id"], m["first"]) for m in report["missing_windows"]] == [("cam-1", "boot-cam-1-000004")]
    assert report["covers"] == {"from": START.isoformat(), "to": ENDED.isoformat()}
    # judged at the deployment's end, not at the clock: cam-1's last window inside ended at 12:00, cam-2's at 16:00
    assert [(s["device_id"], s["silent_h"]) for s in report["silent_devices"]] == [("cam-1", 4.0)]

    d = report["deployment"]
    assert (d["name"], d["purpose"], d["authorised_by"]) == (
        "market-day",
        "find two missing people at the market",
        "Supt. A. Example",
    )
    assert (d["starts_at"], d["ends_at"], d["ended_at"], d["ended_early"]) == (
        START.isoformat(),
        END.isoformat(),
        ENDED.isoformat(),
        True,
    )
    assert (d["state"], d["duration_h"], d["sites"], d["devices"]) == ("ended", 8.0, ["north"], PER_DEVICE_NAMES)
    assert d["purge_due_at"] == PURGE_DUE.isoformat()
    assert report["watchlist"] == {"listed_at_any_time": 3, "listed_at_end": 1}
    assert report["operating_point"] == {
        "target_fmr": 0.0001,
        "thresholds": [
            {"threshold": 0.40, "template_threshold": None, "alerts": 3},
            {"threshold": 0.45, "template_threshold": 0.42, "alerts": 4},
        ],
    }
    (delivery,) = report["changes"]["deliveries"]
    assert (delivery["device"], delivery["reason"], delivery["delivered_by"], delivery["delivered_at"]) == (
        "north/cam-1",
        "start",
        "ada",
        START.isoformat(),
    )
    (change,) = report["changes"]["adjustments"]
    assert (change["kind"], change["made_by"], change["made_at"], change["event_id"]) == (
        "tighten",
        "bob",
        _hours(10).isoformat(),
        _event_id("e3"),
    )


PER_DEVICE_NAMES = ["north/cam-1", "north/cam-2"]


def _count(engine: sa.Engine, query: sa.Select) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()


def test_the_report_reproduces_the_log_before_and_after_the_purge(store: TrialStore) -> None:
    engine = store.engine
    before = deployment_report.build(engine, "market-day", now=PURGE_DUE - timedelta(seconds=1))
    _check_figures(before)
    assert before["purged_at"] is None

    assert purge_due(engine, now=PURGE_DUE - timedelta(seconds=1)) == [], "the retention period has not passed"
    assert _count(engine, sa.select(events)) == len(ALERTS)

    assert purge_due(engine, now=PURGE_DUE) == ["market-day"]
    assert purge_due(engine, now=PURGE_DUE + timedelta(days=1)) == [], "purged once"
    late = PURGE_DUE + timedelta(days=2)  # a second purger that chose it before the first one stored it
    assert retention.purge(engine, watchlist.get(engine, "market-day"), late) is False
    inside = [_event_id(n) for n in INSIDE]
    assert _count(engine, sa.select(events).where(events.c.event_id.in_(inside))) == 0
    assert _count(engine, sa.select(verdicts).where(verdicts.c.event_id.in_(inside))) == 0
    with engine.connect() as connection:
        left = set(connection.execute(sa.select(events.c.event_id)).scalars())
    assert left == {_event_id(n) for n in ("e1", "e5", "g1")}, "alerts outside the period or devices stay"
    assert _count(engine, sa.select(verdicts)) == 3
    assert _count(engine, sa.select(photos)) == 0 and _count(engine, sa.select(people)) == 0
    assert _count(engine, sa.select(windows)) == sum(len(w) for w in WINDOWS.values()), "counts are kept"

    after = deployment_report.build(engine, "market-day", now=PURGE_DUE + timedelta(days=30))
    _check_figures(after)
    assert after["purged_at"] == PURGE_DUE.isoformat()
    assert "Purged at" in after["notes"][0]
    same = {k: v for k, v in after.items() if k not in ("purged_at", "notes")}
    assert same == {k: v for k, v in before.items() if k not in ("purged_at", "notes")}
    with engine.connect() as connection:
        assert connection.execute(sa.select(figures.c.deployment)).scalars().all() == ["market-day"]


def test_a_running_or_retained_deployment_is_not_purged(store: TrialStore, fleet: FleetDir) -> None:
    later = DeploymentSpec(
        "evening", ("north/cam-1",), DAY + timedelta(hours=19), DAY + timedelta(hours=23), "p", "a", "ada", 0
    )
    watchlist.create(store.engine, later, fleet)
    assert purge_due(store.engine, now=DAY + timedelta(hours=20)) == [], "running, and market-day still retained"
    assert purge_due(store.engine, now=DAY + timedelta(hours=23)) == ["evening"], "ended at its stated end"
    report = deployment_report.build(store.engine, "evening", now=DAY + timedelta(days=2))
    assert (report["trial"]["scans"], report["trial"]["alerts"], report["purged_at"]) == (
        0,
        0,
        (DAY + timedelta(hours=23)).isoformat(),
    )
    assert _count(store.engine, sa.select(events)) == len(ALERTS), "another deployment's alerts untouched"


def test_every_format_renders(store: TrialStore) -> None:
    report = deployment_report.build(store.engine, "market-day", now=PURGE_DUE)
    out = {fmt: render(report) for fmt, (_, render) in deployment_report.FORMATS.items()}
    assert set(out) == {"md", "csv", "json", "html"}
    assert out["md"].startswith("# Deployment report: market-day")
    for text in ("Supt. A. Example", "2026-06-01 16:00:00 UTC (early)", "| people listed at any time | 3 |"):
        assert text in out["md"]
    assert "Galleries delivered" in out["md"] and "tighten" in out["md"] and "0.378" in out["md"]
    assert json.loads(out["json"]) == json.loads(json.dumps(report))
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [(r["device_id"], r["scans"]) for r in rows] == [("cam-1", "900"), ("cam-2", "750")]
    assert "<h1>Deployment report: market-day</h1>" in out["html"] and "Negative feedback" in out["html"]


def test_cli_report_and_purge(store: TrialStore, db_url: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "market-day.html"
    assert main(["trial", "report", "--db", db_url, "--deployment", "market-day", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["trial", "report", "--db", db_url, "--deployment", "market-day", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["trial"]["scans"] == SCANS
    assert main(["trial", "report", "--db", db_url, "--deployment", "nowhere", "--format", "md"]) == 1
    assert "no deployment 'nowhere'" in capsys.readouterr().err
    for extra, why in (
        (
            ["--deployment", "market-day", "--site", "north"],
            "--deployment covers its own devices and period: drop --site",
        ),
        (["--format", "md", "--out", str(tmp_path / "t")], "--format is for one deployment's report"),
        ([], "--out FOLDER"),
    ):
        assert main(["trial", "report", "--db", db_url, *extra]) == 1
        assert why in capsys.readouterr().err
    assert main(["trial", "purge", "--db", db_url, "--now", "2026-06-02T00:00Z"]) == 0
    assert "nothing" in capsys.readouterr().out
    assert main(["trial", "purge", "--db", db_url, "--now", PURGE_DUE.isoformat()]) == 0
    assert capsys.readouterr().out.startswith("market-day: purged")


def test_unknown_deployment_is_one_clear_error(store: TrialStore) -> None:
    with pytest.raises(DeploymentError, match="no deployment 'nowhere'"):
        deployment_report.build(store.engine, "nowhere")
