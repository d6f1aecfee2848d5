"""The two pictures of an evaluation: a DET curve with the operating points, and per-group rates.

A DET curve (FNMR against FMR, both on log axes) shows the whole trade-off a threshold makes;
the per-group bars with their 95% intervals show whom the chosen threshold fails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.central.charts import pyplot
from edge.central.evaluation.metrics import det_points, fmr_at, fnmr_at
from edge.central.evaluation.scores import Scores


def plot_det(path: Path, by_mode: dict[str, Scores], report: dict[str, Any]) -> None:
    """Overall DET curve (thick), one thin curve per sizeable group, in the mode in force; operating
    points (each in its own mode) marked."""
    plt = pyplot()
    scores = by_mode[report["threshold"]["mode"]]
    fig, ax = plt.subplots(figsize=(10, 6))
    curves = [("overall", None, 2.5)] + [(g, g, 1.0) for g, v in report["groups"].items() if v["sizeable"]]
    for label, group, width in curves:
        genuine, impostor = scores.split(group)
        fmr, fnmr = det_points(genuine, impostor)
        shown = (fmr > 0) & (fnmr > 0)  # log axes cannot show a zero rate
        ax.plot(fmr[shown], fnmr[shown], lw=width, label=label, color="black" if group is None else None)
    genuine, impostor = scores.split(None)
    floor_x, floor_y = 0.5 / max(report["overall"]["impostor_pairs"], 1), 0.5 / max(genuine.size, 1)
    for point, marker in zip(report["operating_points"], "o^sDvP*", strict=False):
        t = point["threshold"]  # a zero rate is drawn at half of one pair's rate, the axis cannot show 0
        genuine, impostor = by_mode[point["mode"]].split(None)
        x, y = max(fmr_at(impostor, t), floor_x), max(fnmr_at(genuine, t), floor_y)
        ax.plot(
            [x], [y], marker=marker, ms=10, ls="none", mfc="none", mec="red", mew=2, label=f"{point['name']} ({t:.3f})"
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="false match rate (FMR)",
        ylabel="false non-match rate (FNMR)",
        title=f"DET: {report['dataset']['description']}\n{report['models']['embedder']['id']}",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_groups(path: Path, report: dict[str, Any]) -> None:
    """FMR and FNMR per group at the threshold in force, with Wilson intervals; small groups greyed."""
    plt = pyplot()
    names = list(report["groups"])
    y = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.8), sharey=True)
    for ax, key, label in zip(
        axes, ("fmr", "fnmr"), ("FMR (impostor pairs in group)", "FNMR (genuine pairs)"), strict=True
    ):
        for i, name in enumerate(names):
            group = report["groups"][name]
            rate = group["at_threshold"][key]
            if rate["n"] == 0:
                ax.text(0, i, " no pairs", va="center", fontsize=7)
                continue
            value = rate["rate"]
            lo, hi = rate["ci95"]
            colour = "tab:blue" if group["sizeable"] else "lightgrey"
            ax.barh(i, value, color=colour)
            ax.errorbar(value, i, xerr=[[value - lo], [hi - value]], fmt="none", ecolor="black", capsize=3)
            ax.text(hi, i, f" {rate['k']}/{rate['n']}", va="center", fontsize=7)
        ax.set_xlabel(label)
        # Zoom to the widest interval so small rates (FMRs of a few percent) stay visible.
        widest = max(
            (g["at_threshold"][key]["ci95"][1] for g in report["groups"].values() if g["at_threshold"][key]["n"]),
            default=1.0,
        )
        ax.set_xlim(0, min(1.05, 1.25 * widest + 0.01))
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(y, [n if report["groups"][n]["sizeable"] else f"{n} (small)" for n in names], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(
        f"per group at threshold {report['threshold']['value']:.4f} (bars: 95% Wilson interval; grey: not sizeable)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(out_dir: Path, by_mode: dict[str, Scores], report: dict[str, Any]) -> tuple[Path, ...]:
    """det.png and groups.png; none, with a one-line note on stderr, without matplotlib (a board)."""
    if importlib.util.find_spec("matplotlib") is None:
        print("note: matplotlib is not installed (central extra): det.png and groups.png skipped", file=sys.stderr)
        return ()
    det, groups = out_dir / "det.png", out_dir / "groups.png"
    plot_det(det, by_mode, report)
    plot_groups(groups, report)
    return det, groups
