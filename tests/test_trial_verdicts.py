"""Verdicts on SQLite and PostgreSQL: two stages (the operator's adjudication, then the outcome
where an officer engaged), append-only, the latest of each stage counts, a CSV log all or nothing."""

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


def test_verdicts_are_appended_and_the_latest_of_each_stage_counts(db_url: str, alerts: list[str], capsys) -> None:
    first, second, third = alerts
    assert main(["trial", "verdict", first, "--outcome", "not_adjudicated", "--by", "ann", "--db", db_url]) == 0
    assert (
        main(["trial", "verdict", first, "--outcome", "false_alert", "--by", "bob", "--note", "twin", "--db", db_url])
        == 0
    )
    assert f"{first}: false_alert by bob" in capsys.readouterr().out
    with TrialStore.open(db_url) as store:
        store.add_verdict(second, "true_alert", "cy", at=T0 + timedelta(hours=1))
        store.add_verdict(second, "confirmed_false", "pc 7", "not him", at=T0 + timedelta(hours=2))
        store.add_verdict(second, "confirmed_true", "pc 9", at=T0 + timedelta(hours=4))
        store.add_verdict(second, "false_alert", "dee", at=T0 + timedelta(hours=3))  # changes the adjudication only
        store.add_verdict(second, "true_alert", "eve", at=T0 + timedelta(minutes=30))  # given later, about earlier
        latest = {(v["event_id"], v["stage"]): (v["outcome"], v["by"], v["note"]) for v in store.verdicts()}
        history = [(v["event_id"], v["outcome"], v["by"]) for v in store.verdicts(history=True)]
        second_history = [(v["stage"], v["outcome"], v["by"], v["at"]) for v in store.verdict_history(second)]
        shown = store.latest_verdicts([second, first, third, second])
        assert store.verdict_history(third) == []
    assert latest == {
        (first, "adjudication"): ("false_alert", "bob", "twin"),
        (second, "adjudication"): ("false_alert", "dee", None),
        (second, "engagement"): ("confirmed_true", "pc 9", None),
    }
    assert len(history) == 7 and (first, "not_adjudicated", "ann") in history
    assert second_history == [  # both stages, oldest first, nothing lost
        ("adjudication", "true_alert", "eve", T0 + timedelta(minutes=30)),
        ("adjudication", "true_alert", "cy", T0 + timedelta(hours=1)),
        ("engagement", "confirmed_false", "pc 7", T0 + timedelta(hours=2)),
        ("adjudication", "false_alert", "dee", T0 + timedelta(hours=3)),
        ("engagement", "confirmed_true", "pc 9", T0 + timedelta(hours=4)),
    ]
    assert list(shown) == [second, first, third]  # as asked, once each
    assert shown[second].adjudication is not None and shown[second].engagement is not None
    assert (shown[second].adjudication["outcome"], shown[second].adjudication["by"]) == ("false_alert", "dee")
    assert (shown[second].engagement["outcome"], shown[second].engagement["stage"]) == ("confirmed_true", "engagement")
    assert shown[first].adjudication is not None and shown[first].adjudication["outcome"] == "false_alert"
    assert shown[first].engagement is None
    assert (shown[third].adjudication, shown[third].engagement) == (None, None)


@pytest.mark.parametrize(("word", "became"), [("confirmed", "confirmed_true"), ("not_checked", "not_adjudicated")])
def test_a_word_of_the_earlier_vocabulary_is_refused_naming_the_new_ones(
    db_url: str, alerts: list[str], capsys, word: str, became: str
) -> None:
    assert main(["trial", "verdict", alerts[0], "--outcome", word, "--by", "ann", "--db", db_url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"outcome {word!r} is the earlier vocabulary (stored ones became {became})" in err
    assert all(w in err for w in ("true_alert", "false_alert", "not_adjudicated", "confirmed_true", "confirmed_false"))
    with TrialStore.open(db_url) as store:
        with pytest.raises(TrialStoreError, match=f"outcome {word!r} is the earlier vocabulary"):
            store.add_verdict(alerts[0], word, "ann")
        assert store.verdicts(history=True) == []


def test_a_verdict_on_an_unknown_event_is_refused(db_url: str, alerts: list[str], capsys) -> None:
    unknown = "0123456789ab4def8123456789abcdef"
    assert main(["trial", "verdict", unknown, "--outcome", "true_alert", "--by", "ann", "--db", db_url]) == 1
    err = capsys.readouterr().err
    assert f"no alert with event id {unknown}" in err and "Traceback" not in err
    with TrialStore.open(db_url) as store:
        assert store.verdicts(history=True) == []
        with pytest.raises(TrialStoreError, match="outcome 'maybe' is not a verdict: use true_alert"):
            store.add_verdict(alerts[0], "maybe", "ann")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_days_log_is_imported_whole(db_url: str, alerts: list[str], tmp_path: Path, capsys) -> None:
    a, b, c = alerts
    log = write(
        tmp_path / "day.csv",
        "event_id,outcome,by,note,at\n"
        f"{a},true_alert,ann,known face,2026-03-02T09:00:00Z\n"
        f'{b},false_alert,bob,"lookalike, brother",2026-03-02T09:05:00+01:00\n'
        f"{c},not_adjudicated,ann,,\n"
        f"{a},confirmed_false,pc 7,stopped: not him,2026-03-02T09:20:00Z\n"
        f"{a},false_alert,cy,second look,2026-03-02T10:00:00Z\n",
    )
    assert main(["trial", "verdicts", "import", str(log), "--db", db_url]) == 0
    assert "5 verdicts imported" in capsys.readouterr().out
    with TrialStore.open(db_url) as store:
        latest = {(v["event_id"], v["stage"]): (v["outcome"], v["by"], v["note"], v["at"]) for v in store.verdicts()}
        assert len(store.verdicts(history=True)) == 5
    assert latest[a, "adjudication"] == (
        "false_alert",
        "cy",
        "second look",
        datetime(2026, 3, 2, 10, tzinfo=timezone.utc),
    )
    assert latest[a, "engagement"] == (
        "confirmed_false",
        "pc 7",
        "stopped: not him",
        datetime(2026, 3, 2, 9, 20, tzinfo=timezone.utc),
    )
    assert latest[b, "adjudication"] == (
        "false_alert",
        "bob",
        "lookalike, brother",
        datetime(2026, 3, 2, 8, 5, tzinfo=timezone.utc),
    )
    assert latest[c, "adjudication"][:3] == ("not_adjudicated", "ann", None)
    assert len(latest) == 4


def test_a_log_with_bad_lines_is_refused_whole_with_their_numbers(
    db_url: str, alerts: list[str], tmp_path: Path, capsys
) -> None:
    a, b, _ = alerts
    log = write(
        tmp_path / "day.csv",
        "event_id,outcome,by,note\n"
        f"{a},true_alert,ann,fine\n"  # line 2: good
        f"{b},maybe,ann,\n"  # line 3: outcome
        f"{a},true_alert,,\n"  # line 4: no name
        "0123456789ab4def8123456789abcdef,true_alert,ann,\n"  # line 5: unknown event
        f"{b},false_alert,bob,ok\n"  # line 6: good
        f"{a},confirmed,ann,\n"  # line 7: the earlier vocabulary
        f"{b},not_checked,ann,\n"  # line 8: the earlier vocabulary
        f"{a},confirmed_true,pc 7,\n",  # line 9: good
    )
    assert main(["trial", "verdicts", "import", str(log), "--db", db_url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing imported" in err
    assert "line 3: outcome 'maybe' is not a verdict: use true_alert" in err and "line 4: no name" in err
    assert "line 5: no alert with event id 0123456789ab4def8123456789abcdef" in err
    assert "line 7: outcome 'confirmed' is the earlier vocabulary (stored ones became confirmed_true): use" in err
    assert "line 8: outcome 'not_checked' is the earlier vocabulary (stored ones became not_adjudicated)" in err
    assert "confirmed_false (after an officer engaged the person)" in err
    assert "line 2" not in err and "line 6" not in err and "line 9" not in err
    with TrialStore.open(db_url) as store:
        assert store.verdicts(history=True) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("event_id,outcome,note\n", "missing by"),
        ("event_id,outcome,by,note,extra\n", "unknown extra"),
        ("event_id,outcome,by,note,at\nX,true_alert,ann,,2026-03-02T09:00:00\n", "line 2: time"),
        ("event_id,outcome,by,note\n", "no verdicts"),
    ],
)
def test_a_malformed_log_is_one_line_error(db_url: str, alerts: list[str], tmp_path: Path, capsys, text, says) -> None:
    assert main(["trial", "verdicts", "import", str(write(tmp_path / "day.csv", text)), "--db", db_url]) == 1
    assert says in capsys.readouterr().err
