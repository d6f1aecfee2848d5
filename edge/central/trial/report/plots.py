"""The report's pictures as inline SVG (text drawn as paths: no font, file or network needed to view)."""

from __future__ import annotations

import io
from typing import Any

from edge.central.charts import pyplot


def _svg(fig: Any) -> str:
    """The figure as an <svg> element, without the XML prolog and doctype."""
    plt = pyplot()
    plt.rcParams["svg.fonttype"] = "path"
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def scans_and_alerts(report: dict[str, Any]) -> str:
    """Scans (bars) and alerts (line, right axis) per day."""
    plt = pyplot()
    days = [d["day"] for d in report["days"]]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(days, [d["scans"] for d in report["days"]], color="#8fb3d9", label="faces scanned")
    ax.set(ylabel="faces scanned", title="Scans and alerts per day (UTC)")
    right = ax.twinx()
    right.plot(days, [d["alerts"] for d in report["days"]], "o-", color="#c0392b", label="alerts")
    right.plot(days, [d["false_alert"] for d in report["days"]], "x--", color="#7f1d1d", label="false alerts")
    right.set(ylabel="alerts")
    right.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


PRECISIONS = (
    ("precision_before_engagement", "before engagement: true / adjudicated", "#1f4e79", -0.12),
    ("precision_after_engagement", "after engagement: confirmed true / engaged", "#c0392b", 0.12),
)


def precision(report: dict[str, Any]) -> str:
    """Precision before and after engagement with their 95% intervals and k/n, for the trial and
    each device; a precision without a denominator is left out."""
    plt = pyplot()
    rows = [("whole trial", report["trial"])] + [(f"{d['site']}/{d['device_id']}", d) for d in report["devices"]]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.6))
    for y, (_label, f) in enumerate(reversed(rows)):
        for key, label, color, dy in PRECISIONS:
            p = f[key]
            if p["value"] is None:
                continue
            lo, hi = p["ci95"]
            ax.errorbar(
                [p["value"]],
                [y + dy],
                xerr=[[p["value"] - lo], [hi - p["value"]]],
                fmt="o",
                capsize=3,
                color=color,
                label=label,
            )
            ax.annotate(f"{p['k']}/{p['n']}", (hi, y + dy), xytext=(6, -3), textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    ax.set(
        xlim=(0, 1.15), xlabel="precision (95% Wilson interval)", title="Alert precision before and after engagement"
    )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per kind, not per point
    if unique:
        ax.legend(list(unique.values()), list(unique), fontsize=8, loc="lower left")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def per_device(report: dict[str, Any]) -> str:
    """Per device: observed false alerts beside the number its reported FMR and gallery predicted."""
    plt = pyplot()
    devices = report["devices"]
    labels = [f"{d['site']}/{d['device_id']}" for d in devices]
    x = range(len(devices))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(
        [i - 0.2 for i in x],
        [d["false_alert"] for d in devices],
        0.4,
        color="#c0392b",
        label="false alerts (adjudicated)",
    )
    ax.bar(
        [i + 0.2 for i in x],
        [d["predicted_false_alerts"] for d in devices],
        0.4,
        color="#bbbbbb",
        label="predicted from FMR and gallery (mixed crowd)",
    )
    ax.set_xticks(list(x), labels, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="false alerts", title="False alerts per device: observed and predicted")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig)
