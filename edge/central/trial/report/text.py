"""The report as `report.md` (tables a person reads), `report.csv` (one row per site, device and day,
every figure) and `report.json` (everything, for scripts)."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime
from typing import Any

from edge.link.payloads import escape_control


def _bound(rate: dict[str, Any], i: int) -> float | None:
    return None if rate["ci95"] is None else rate["ci95"][i]


# (CSV column, how a figures dict gives it); the same columns appear in every table.
FIGURE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("windows", lambda f: f["windows"]),
    ("missing_windows", lambda f: f["missing_windows"]),
    ("uptime_s", lambda f: f["uptime_s"]),
    ("frames", lambda f: f["frames"]),
    ("scans", lambda f: f["scans"]),
    ("quality_rejected", lambda f: f["quality_rejected"]),
    ("alerts", lambda f: f["alerts"]),
    ("matches_in_windows", lambda f: f["matches_in_windows"]),
    ("alerts_per_1000_scans", lambda f: f["alerts_per_1000_scans"]),
    ("true_alert", lambda f: f["true_alert"]),
    ("false_alert", lambda f: f["false_alert"]),
    ("not_adjudicated", lambda f: f["not_adjudicated"]),
    ("no_verdict", lambda f: f["no_verdict"]),
    ("adjudicated", lambda f: f["adjudicated"]),
    ("precision_before_engagement", lambda f: f["precision_before_engagement"]["value"]),
    ("precision_before_engagement_ci95_lo", lambda f: _bound(f["precision_before_engagement"], 0)),
    ("precision_before_engagement_ci95_hi", lambda f: _bound(f["precision_before_engagement"], 1)),
    ("confirmed_true", lambda f: f["confirmed_true"]),
    ("confirmed_false", lambda f: f["confirmed_false"]),
    ("engaged", lambda f: f["engaged"]),
    ("precision_after_engagement", lambda f: f["precision_after_engagement"]["value"]),
    ("precision_after_engagement_ci95_lo", lambda f: _bound(f["precision_after_engagement"], 0)),
    ("precision_after_engagement_ci95_hi", lambda f: _bound(f["precision_after_engagement"], 1)),
    ("false_alerts_per_1000_scans", lambda f: f["false_alerts_per_1000_scans"]["value"]),
    ("false_alerts_per_1000_ci95_lo", lambda f: _bound(f["false_alerts_per_1000_scans"], 0)),
    ("false_alerts_per_1000_ci95_hi", lambda f: _bound(f["false_alerts_per_1000_scans"], 1)),
    ("predicted_false_alerts", lambda f: f["predicted_false_alerts"]),
    ("predicted_false_alerts_bound", lambda f: f["predicted_false_alerts_bound"]),
    ("scans_without_prediction", lambda f: f["scans_without_prediction"]),
)
SETTINGS = ("threshold", "fmr", "embedder_model_id", "gallery_version", "gallery_identities", "config_version")


Table = tuple[str, list[str], list[list[str]]]
"""(title, head, rows) of one table."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: text starting like a formula (`=`, `+`, `-`, `@`)
    gets a leading quote; numbers stay numbers."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_START) else text


def to_csv(report: dict[str, Any]) -> str:
    """One row per site, device and day; empty cells where a rate has no denominator."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["site", "device_id", "day", *(name for name, _ in FIGURE_COLUMNS)])
    for row in report["rows"]:
        values = [inert_cell(get(row)) for _, get in FIGURE_COLUMNS]
        writer.writerow([inert_cell(row["site"]), inert_cell(row["device_id"]), row["day"], *values])
    return out.getvalue()


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def number(x: float | None, digits: int = 2) -> str:
    """Thousands separated; "n/a" when there is no denominator."""
    if x is None:
        return "n/a"
    return f"{x:,}" if isinstance(x, int) else f"{x:,.{digits}f}"


def when(iso: str | None) -> str:
    """ "2026-05-04 22:00:00 UTC" from an ISO time; None: still in force at the end of the data."""
    return "end" if iso is None else datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def rate_cell(rate: dict[str, Any], percent: bool) -> str:
    """ "66.7% (20.8-93.9%)" or "0.52 (0.14-1.90)": a value with its 95% interval."""
    if rate["value"] is None:
        return "n/a"
    scale, unit, digits = (100, "%", 1) if percent else (1, "", 2)
    lo, hi = rate["ci95"]
    return f"{scale * rate['value']:.{digits}f}{unit} ({scale * lo:.{digits}f}-{scale * hi:.{digits}f}{unit})"


def precision_cell(rate: dict[str, Any]) -> str:
    """ "55.6% (26.7-81.1%), 5/9": a precision with its interval and its denominator."""
    return f"{rate_cell(rate, percent=True)}, {rate['k']:,}/{rate['n']:,}"


def figure_cells(f: dict[str, Any]) -> list[str]:
    """The figures a table shows, in the order of `TABLE_HEAD`."""
    return [
        number(f["frames"]),
        number(f["scans"]),
        number(f["quality_rejected"]),
        number(f["alerts"]),
        number(f["alerts_per_1000_scans"]),
        number(f["true_alert"]),
        number(f["false_alert"]),
        number(f["not_adjudicated"]),
        number(f["no_verdict"]),
        precision_cell(f["precision_before_engagement"]),
        number(f["confirmed_true"]),
        number(f["confirmed_false"]),
        precision_cell(f["precision_after_engagement"]),
        rate_cell(f["false_alerts_per_1000_scans"], percent=False),
        f"{f['predicted_false_alerts']:.2f} (bound {f['predicted_false_alerts_bound']:.2f})"
        + (f", {f['scans_without_prediction']:,} scans unknown" if f["scans_without_prediction"] else ""),
        f"{f['uptime_s'] / 3600:.2f} h",
        f"{f['missing_windows']} (scans unknown)" if f["missing_windows"] else "0",
    ]


TABLE_HEAD = (
    "frames",
    "scans",
    "quality-rejected",
    "alerts",
    "alerts / 1,000 scans",
    "true alerts",
    "false alerts",
    "not adjudicated",
    "of which no verdict",
    "precision before engagement (95% CI), true / adjudicated",
    "confirmed true",
    "confirmed false",
    "precision after engagement (95% CI), confirmed true / engaged",
    "false alerts / 1,000 scans (95% CI)",
    "predicted false alerts: mixed crowd (bound: one group)",
    "uptime",
    "missing windows",
)


def tables(report: dict[str, Any]) -> list[Table]:
    """(title, head, rows) of every table, shared by Markdown and HTML."""
    head = list(TABLE_HEAD)
    out = [
        ("Trial", head, [figure_cells(report["trial"])]),
        ("Per site", ["site", *head], [[s["site"], *figure_cells(s)] for s in report["sites"]]),
        (
            "Per device",
            ["site", "device", *head],
            [[d["site"], d["device_id"], *figure_cells(d)] for d in report["devices"]],
        ),
        ("Per day", ["day", *head], [[d["day"], *figure_cells(d)] for d in report["days"]]),
        (
            "Per device and day",
            ["site", "device", "day", *head],
            [[r["site"], r["device_id"], r["day"], *figure_cells(r)] for r in report["rows"]],
        ),
        (
            "Settings in force",
            ["site", "device", "from", "to", *SETTINGS],
            [
                [p["site"], p["device_id"], p["from"], p["to"] or "end", *(str(p.get(k, "unknown")) for k in SETTINGS)]
                for p in report["periods"]
            ],
        ),
        (
            "Missing windows (scans unknown, not counted as zero)",
            ["site", "device", "day", "first window", "last window", "windows"],
            [
                [m["site"], m["device_id"], m["day"], m["first"], m["last"], f"{m['count']:,}"]
                for m in report["missing_windows"]
            ],
        ),
        (
            "Messages set aside (received, never stored: what they held is unknown)",
            ["reason", "messages", "first", "last", "example"],
            [
                [s["reason"], f"{s['count']:,}", when(s["first"]), when(s["last"]), s["example"]]
                for s in report["set_aside"]
            ],
        ),
        (
            "Silent devices (nothing received since: stopped, or not stored)",
            ["site", "device", "last window received", "silent for"],
            [
                [d["site"], d["device_id"], when(d["last_window_end"]), f"{d['silent_h']:,.2f} h"]
                for d in report["silent_devices"]
            ],
        ),
    ]
    return out


def markdown_cell(text: str) -> str:
    """A table cell as text, whatever a device put in it: HTML escaped (Markdown renders inline
    HTML), pipes and backticks escaped, control characters and line breaks shown as escapes."""
    escaped = html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")
    return escape_control(escaped)


def to_markdown(report: dict[str, Any], title: str = "Field trial report", first: list[Table] | None = None) -> str:
    """The report as Markdown; `first`: tables shown before the trial's (a deployment's facts)."""
    sel = report["selection"]
    lines = [
        f"# {title}",
        "",
        f"**{report['headline']}.**",
        "",
        f"Covers {when(report['covers']['from'])} to {when(report['covers']['to'])}; selection: "
        + ", ".join(f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in sel.items() if v is not None)
        + ("" if any(sel.values()) else "everything"),
        "",
    ]
    for name, head, rows in [*(first or []), *tables(report)]:
        lines += [f"## {name}", ""]
        if not rows:
            lines += ["none", ""]
            continue
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    lines += ["## Definitions", "", *(f"- {n}" for n in report["notes"]), ""]
    return "\n".join(lines)
