"""Operator verdicts on SQLite and PostgreSQL: append-only, the latest counts, a CSV log all or nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_trial_store import T0, alert

from edge.central.trial.store import TrialStore, TrialStoreError
from edge.cli import main


@pytest.fixture
def alerts(db_url: str) -> list[str]:
    """Three alerts stored in the trial database; their event ids."""
    events = [alert(1), alert(2), alert(3)]
    with TrialStore.open(db_url) as store:
        store.add_many(events)
    return [e.event_id for e in events]


def test_verdicts_are_appended_and_the_latest_counts(db_url: str, alerts: list[str], capsys) -> None:
    first, second, _ = alerts
    assert main(["trial", "verdict", first, "--outcome", "not_checked", "--by", "ann", "--db", db_url]) == 0
    assert (
        main(["trial", "verdict", first, "--outcome", "false_alert", "--by", "bob", "--note", "twin", "--db", db_url])
        == 0
    )
    assert f"{first}: false_alert by bob" in capsys.readouterr().out
    with TrialStore.open(db_url) as store:
        store.add_verdict(second, "confirmed", "cy", at=T0 + timedelta(hours=2))
        store.add_verdict(second, "false_alert", "dee", at=T0 + timedelta(hours=1))  # given later, about earlier
        latest = {v["event_id"]: (v["outcome"], v["by"], v["note"]) for v in store.verdicts()}
        history = [(v["event_id"], v["outcome"], v["by"]) for v in store.verdicts(history=True)]
    assert latest == {first: ("false_alert", "bob", "twin"), second: ("confirmed", "cy", None)}
    assert sorted(history) == sorted(
        [
            (first, "not_checked", "ann"),
            (first, "false_alert", "bob"),
            (second, "false_alert", "dee"),
            (second, "confirmed", "cy"),
        ]
    )


def test_a_verdict_on_an_unknown_event_is_refused(db_url: str, alerts: list[str], capsys) -> None:
    unknown = "0123456789ab4def8123456789abcdef"
    assert main(["trial", "verdict", unknown, "--outcome", "confirmed", "--by", "ann", "--db", db_url]) == 1
    err = capsys.readouterr().err
    assert f"no alert with event id {unknown}" in err and "Traceback" not in err
    with TrialStore.open(db_url) as store:
        assert store.verdicts(history=True) == []
        with pytest.raises(TrialStoreError, match="outcome"):
            store.add_verdict(alerts[0], "maybe", "ann")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_days_log_is_imported_whole(db_url: str, alerts: list[str], tmp_path: Path, capsys) -> None:
    a, b, c = alerts
    log = write(
        tmp_path / "day.csv",
        "event_id,outcome,by,note,at\n"
        f"{a},confirmed,ann,known face,2026-03-02T09:00:00Z\n"
        f'{b},false_alert,bob,"lookalike, brother",2026-03-02T09:05:00+01:00\n'
        f"{c},not_checked,ann,,\n"
        f"{a},false_alert,cy,second look,2026-03-02T10:00:00Z\n",
    )
    assert main(["trial", "verdicts", "import", str(log), "--db", db_url]) == 0
    assert "4 verdicts imported" in capsys.readouterr().out
    with TrialStore.open(db_url) as store:
        latest = {v["event_id"]: (v["outcome"], v["by"], v["note"], v["at"]) for v in store.verdicts()}
        assert len(store.verdicts(history=True)) == 4
    assert latest[a] == ("false_alert", "cy", "second look", datetime(2026, 3, 2, 10, tzinfo=timezone.utc))
    assert latest[b] == ("false_alert", "bob", "lookalike, brother", datetime(2026, 3, 2, 8, 5, tzinfo=timezone.utc))
    assert latest[c][:3] == ("not_checked", "ann", None)


def test_a_log_with_bad_lines_is_refused_whole_with_their_numbers(
    db_url: str, alerts: list[str], tmp_path: Path, capsys
) -> None:
    a, b, _ = alerts
    log = write(
        tmp_path / "day.csv",
        "event_id,outcome,by,note\n"
        f"{a},confirmed,ann,fine\n"  # line 2: good
        f"{b},maybe,ann,\n"  # line 3: outcome
        f"{a},confirmed,,\n"  # line 4: no name
        "0123456789ab4def8123456789abcdef,confirmed,ann,\n"  # line 5: unknown event
        f"{b},false_alert,bob,ok\n",  # line 6: good
    )
    assert main(["trial", "verdicts", "import", str(log), "--db", db_url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing imported" in err
    assert "line 3: outcome 'maybe'" in err and "line 4: no name" in err
    assert "line 5: no alert with event id 0123456789ab4def8123456789abcdef" in err
    assert "line 2" not in err and "line 6" not in err
    with TrialStore.open(db_url) as store:
        assert store.verdicts(history=True) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("event_id,outcome,note\n", "missing by"),
        ("event_id,outcome,by,note,extra\n", "unknown extra"),
        ("event_id,outcome,by,note,at\nX,confirmed,ann,,2026-03-02T09:00:00\n", "line 2: time"),
        ("event_id,outcome,by,note\n", "no verdicts"),
    ],
)
def test_a_malformed_log_is_one_line_error(db_url: str, alerts: list[str], tmp_path: Path, capsys, text, says) -> None:
    assert main(["trial", "verdicts", "import", str(write(tmp_path / "day.csv", text)), "--db", db_url]) == 1
    assert says in capsys.readouterr().err
