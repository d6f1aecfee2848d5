"""Progress bars only on a terminal: a bar redrawn with carriage returns fills a log file."""

from __future__ import annotations

import io

import pytest
from test_eval import image_root, lfw_subset, write_csv

from edge.central.evaluation.dataset import read_identities
from edge.central.evaluation.scores import describe_images
from edge.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "drawn"), [(io.StringIO(), False), (Terminal(), True)], ids=["log", "terminal"])
def test_bar_only_on_a_terminal(monkeypatch, stream, drawn):
    monkeypatch.setattr("sys.stderr", stream)
    for _ in progress(range(3), desc="counting"):
        pass
    assert ("counting" in stream.getvalue()) == drawn


def test_describing_a_dataset_writes_no_bar_into_a_log(data_dir, tmp_path, stills_vision, capsys):
    rows = lfw_subset(data_dir, {"male_White": 1}, 2)
    dataset = read_identities(write_csv(tmp_path / "ids.csv", rows), image_root(data_dir, tmp_path), "group", None)
    describe_images(stills_vision, dataset)
    assert "describing" not in capsys.readouterr().err  # pytest's stderr is not a terminal
