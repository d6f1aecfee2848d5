"""`edge eval` runs on a board without matplotlib: the PNGs are skipped with one line, nothing else."""

from __future__ import annotations

import importlib.util

from edge.central.evaluation import plots


def test_plots_are_skipped_with_a_note_without_matplotlib(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert plots.write_plots(tmp_path, {}, {}) == ()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matplotlib is not installed" in err and "skipped" in err
    assert list(tmp_path.iterdir()) == []
