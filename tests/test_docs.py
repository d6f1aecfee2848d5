"""The documentation (README.md, the site under docs/), LICENSE and packaging metadata say what the code does."""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import build_parser
from edge.config import Settings
from edge.device.overlay import SETTABLE
from edge.link import payloads

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PYPROJECT = (REPO / "pyproject.toml").read_text()
DOCS = REPO / "docs"
PAGES = DOCS / "pages"
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".conf", ".service", ""}
README_MAX_LINES = 150


def page(name: str) -> str:
    return (PAGES / name).read_text()


def page_section(name: str, heading: str) -> str:
    """A page's text from `heading` (a whole heading line) to the next heading at its level or above."""
    text = page(name)
    level = len(heading) - len(heading.lstrip("#"))
    after = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n#{{1,{level}}} ", after, maxsplit=1)[0]


def contract_row(topic: str) -> str:
    """The MQTT contract table's row for `topic`."""
    rows = [line for line in page("mqtt.md").splitlines() if line.startswith(f"| `{topic}` |")]
    assert len(rows) == 1, f"the MQTT contract (docs/pages/mqtt.md) has no single row for {topic}"
    return rows[0]


def counter_names() -> set[str]:
    """The counters the Counters table defines (StatsPayload's row says 'the seven counters')."""
    table = page_section("device.md", "### Counters").strip().split("\n\n", 1)[0]
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
def test_mqtt_contract_lists_every_payload_field(topic, model):
    named = set(re.findall(r"`(\w+)`", contract_row(topic))) | (counter_names() if topic == "stats" else set())
    assert set(model.model_fields) - named == set()


def setting_keys() -> set[str]:
    """Every dotted settings key, walked from the pydantic-settings models."""
    return {
        f"{section}.{key}" for section, field in Settings.model_fields.items() for key in field.annotation.model_fields
    }


def test_configuration_table_names_only_real_settings():
    """The hand-written table (docs/pages/device.md) may group keys, but names none the code lacks."""
    table = page_section("device.md", "## Configuration")
    first_cells = [row.split(" | ")[0] for row in table.splitlines() if row.startswith("| `")]
    named = {key for cell in first_cells for key in re.findall(r"`([\w.]+)`", cell)}
    assert named and named - setting_keys() == set()


def test_remote_configuration_lists_every_settable_key():
    section = page_section("fleet.md", "## Remote configuration")
    assert {key for key in SETTABLE if f"`{key}`" not in section} == set()


# -- the README: short, first the two commands, then links into the site ------------------------------


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/pages/"
    assert lines[0].startswith("# ") and lines[1:3] == ["", "```bash"], "the title, then the two commands"
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[0] for line in first_block] == ["scripts/demo.sh", "scripts/test.sh"]
    assert "Every match is an alert for a person to review, never a verdict." in README
    assert ".venv/bin/mkdocs serve -f docs/mkdocs.yml" in README


def test_readme_links_to_every_page_and_only_to_files_that_exist():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link.split("#", 1)[0] for link in links if not re.match(r"[a-z]+://", link)]
    assert [link for link in local if link and not (REPO / link).exists()] == []
    linked = {Path(link) for link in local}
    pages = {path.relative_to(REPO) for path in PAGES.rglob("*.md")}
    assert pages - linked == set(), "README.md links to every page of the site"


def test_development_page_names_the_extras_ci_installs():
    extras = re.search(r"^export EXTRAS=([\w,]+)", (REPO / ".ci" / "run").read_text(), re.M)
    assert extras, ".ci/run sets EXTRAS"
    assert f"EXTRAS={extras.group(1)} scripts/setup.sh" in page("development.md")
    assert "docs" in extras.group(1).split(",")


# -- the site: built as CI builds it; the generated references are complete ----------------------------


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (path, parser) below `parser`, walked through its subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from subcommands(child, (*path, name))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]' to build the site")
    pytest.importorskip("material", reason="mkdocs-material is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(DOCS / "mkdocs.yml"), "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_site_builds_strict_with_every_page(site):
    for source in PAGES.rglob("*.md"):
        built = site / source.relative_to(PAGES).with_suffix("") / "index.html"
        assert (site / "index.html" if source.stem == "index" else built).is_file(), source


def test_cli_reference_lists_every_command_and_option(site):
    text = (site / "reference" / "cli" / "index.html").read_text()
    commands = list(subcommands(build_parser()))
    assert commands
    for path, parser in commands:
        anchor = "-".join(("edge", *path))
        assert f'id="{anchor}"' in text, f"no section for edge {' '.join(path)}"
        section = re.split(r'<h\d id="edge-', text.split(f'id="{anchor}"', 1)[1], maxsplit=1)[0]
        section = html.unescape(section)
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if action.dest in ("config", "verbose"):  # every command's common options: listed once, under edge
                continue
            for option in action.option_strings or [action.metavar or action.dest]:
                if not isinstance(action, argparse._SubParsersAction):
                    assert option in section, f"edge {' '.join(path)}: {option} is not documented"
            if action.help and not isinstance(action, argparse._SubParsersAction):
                assert " ".join(action.help.split()[:4]) in " ".join(re.sub(r"<[^>]+>", "", section).split())


def test_configuration_reference_lists_every_key(site):
    text = (site / "reference" / "configuration" / "index.html").read_text()
    missing = {key for key in setting_keys() if f"<code>{key}</code>" not in text}
    assert missing == set()
    assert setting_keys() >= SETTABLE


# -- the rest of the repository ------------------------------------------------------------------------


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
