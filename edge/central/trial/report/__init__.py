"""A field trial's report: scans, alerts, verdicts and what they cost, with every denominator.

`build_report` computes one dict from plain records (`data.py`); `write_report` renders it as
report.md, report.csv, report.json and a self-contained report.html.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.central.trial.report.build import build_report
from edge.central.trial.report.html import to_html
from edge.central.trial.report.text import to_csv, to_json, to_markdown

__all__ = ["build_report", "write_report"]


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """Write the four files into `out` (created if needed); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"report.md": to_markdown, "report.csv": to_csv, "report.json": to_json, "report.html": to_html}
    paths = []
    for name, render in files.items():
        path = out / name
        path.write_text(render(report), encoding="utf-8")
        paths.append(path)
    return paths
