"""The README, LICENSE and packaging metadata say what the code does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from edge.link import payloads

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PYPROJECT = (REPO / "pyproject.toml").read_text()
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".conf", ".service", ""}


def readme_row(topic: str) -> str:
    """The MQTT contract table's row for `topic`."""
    rows = [line for line in README.splitlines() if line.startswith(f"| `{topic}` |")]
    assert len(rows) == 1, f"README's MQTT contract has no single row for {topic}"
    return rows[0]


def counter_names() -> set[str]:
    """The counters the README's Counters table defines (StatsPayload's row says 'the six counters above')."""
    table = README.split("### Counters", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.M))


@pytest.mark.parametrize(
    ("topic", "model"),
    [
        ("status", payloads.StatusPayload),
        ("match", payloads.MatchEvent),
        ("stats", payloads.StatsPayload),
        ("config/reported", payloads.ConfigReported),
    ],
)
def test_readme_lists_every_payload_field(topic, model):
    named = set(re.findall(r"`(\w+)`", readme_row(topic))) | (counter_names() if topic == "stats" else set())
    assert set(model.model_fields) - named == set()


def test_no_citation_of_a_document_the_repository_lacks():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    texts = [p for p in tracked if Path(p).suffix in TEXT_SUFFIXES and p != "tests/test_docs.py"]
    citing = [p for p in texts if "DESIGN.md" in (REPO / p).read_text(errors="ignore")]
    assert citing == [] or (REPO / "DESIGN.md").is_file(), citing


def test_license_file_matches_pyproject():
    assert re.search(r'^license = "Apache-2.0"$', PYPROJECT, re.M)
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_version_is_written_in_one_place():
    """`edge.__version__`; pyproject.toml reads it."""
    project = PYPROJECT.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version = ", project, re.M)
    assert re.search(r'^dynamic = \["version"\]', project, re.M)
    assert 'version = { attr = "edge.__version__" }' in PYPROJECT
