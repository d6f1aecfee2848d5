"""`report.html`: one self-contained page (inline CSS and SVG; no script, font, image file or link)."""

from __future__ import annotations

from html import escape
from typing import Any

from edge.central.trial.report import plots
from edge.central.trial.report.text import Table, tables, when

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
.headline { font-size: 1.25em; background: #f3f6fa; border-left: 5px solid #1f4e79; padding: .8em 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
td { white-space: nowrap; }
th { background: #eef2f7; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure svg { width: 100%; max-width: 900px; height: auto; }
.scroll { overflow-x: auto; }
"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p>none</p>"
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def to_html(report: dict[str, Any], title: str = "Field trial report", first: list[Table] | None = None) -> str:
    """The page; `first`: tables shown before the trial's (a deployment's facts)."""
    figures = [
        ("scans-alerts", plots.scans_and_alerts(report)),
        ("precision", plots.precision(report)),
        ("per-device", plots.per_device(report)),
    ]
    covers = report["covers"]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="headline" id="headline">{escape(report["headline"])}.</p>',
        f"<p>Covers {escape(when(covers['from']))} to {escape(when(covers['to']))}.</p>",
        *(f'<figure class="plot" id="plot-{name}">{svg}</figure>' for name, svg in figures),
    ]
    for name, head, rows in [*(first or []), *tables(report)]:
        parts += [f"<h2>{escape(name)}</h2>", _table(head, rows)]
    parts += ["<h2>Definitions</h2><ul>", *(f"<li>{escape(n)}</li>" for n in report["notes"]), "</ul></body></html>"]
    return "\n".join(parts) + "\n"
