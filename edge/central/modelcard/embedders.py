"""The embedder comparison (`scripts/compare_embedders.py`) as the model card shows it.

The script measures every embedder at every operating point; the card needs the figures that
decide (misses at equal FMR at the shipped point, held out and on DEV) and the per-group rates
at that point. `summarise` keeps those in a small JSON the card cites by sha256, and the same
`group_rows` prints the per-group table in the script and in the card.
"""

from __future__ import annotations

from typing import Any

WHERE = {"heldout": "held out (cohort split)", "dev": "DEV"}


def rate_cell(r: dict[str, Any]) -> str:
    """A rate with its count and 95% interval: `6.70% (412/6150, 6.02-7.45)`."""
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.2f}% ({r['k']}/{r['n']}, {100 * lo:.2f}-{100 * hi:.2f})" if r["n"] else "-"


def summarise(
    results: dict[str, Any],
    ms_per_face: dict[str, float],
    point: str,
    default: str,
    sha256: dict[str, str],
    verdict: list[str],
) -> dict[str, Any]:
    """The deciding figures of the script's `results` (embedder -> operating point -> figures) at
    `point`: each embedder's misses at the default's FMR, and per-group rates at its own threshold."""
    equal: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for name, by_point in results.items():
        r = by_point[point]
        if "refused" in r:
            equal[name] = {"refused": r["refused"]}
            continue
        equal[name] = {
            where: dict(r[where]["overall"] if name == default else r[f"{where}_equal_fmr"]) for where in WHERE
        }
        for where in WHERE:
            for group, figures in r[where]["groups"].items():
                cell = groups.setdefault(where, {}).setdefault(group, {"sizeable": figures["sizeable"]})
                cell[name] = {"fnmr": figures["fnmr"], "fmr": figures["fmr"]}
    return {
        "point": point,
        "default": default,
        "embedders": list(results),
        "sha256": sha256,
        "ms_per_face": ms_per_face,
        "equal_fmr": equal,
        "groups": groups,
        "verdict": verdict,
    }


def group_rows(summary: dict[str, Any], where: str) -> list[str]:
    """Per group at the summary's point on `where`: FNMR rows, then FMR rows, one column per embedder."""
    names = summary["embedders"]
    groups = summary["groups"].get(where, {})
    rows = ["| group | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for what in ("fnmr", "fmr"):
        for group, cell in groups.items():
            star = "" if cell["sizeable"] else "*"
            rows.append(
                f"| {group}{star} {what.upper()} | "
                + " | ".join(rate_cell(cell[n][what]) if n in cell else "-" for n in names)
                + " |"
            )
    return rows


def comparison_rows(summary: dict[str, Any] | None, source: str) -> list[str]:
    """The card's section "Other embedders measured": the deciding table, DEV per group, the verdict."""
    link = "[EMBEDDER_COMPARISON.md](EMBEDDER_COMPARISON.md)"
    if summary is None:
        return [
            "SFace (OpenCV Zoo) was measured beside the dlib embedders on the same faces, out of sample on the "
            f"cohort split and on DEV, per group, with 95% intervals and the time per face: {link} "
            "(`python scripts/compare_embedders.py`), which also says why the default was kept."
        ]
    default, ms = summary["default"], summary["ms_per_face"]
    rows = [
        f"From `scripts/compare_embedders.py --summary` ({source}); method, every operating point and the build "
        f"of SFace: {link}. Each embedder gets its own cohort model and per-template thresholds on one part of "
        f"the cohort split, calibrated as the shipped point is (`{summary['point']}`), and is measured on "
        "people none of that saw. Misses at equal FMR: each embedder's threshold set where it makes as many "
        f"false matches as {default} (today's default) made on that set. Time: median per face, 2 threads, "
        "on the machine that ran the comparison.",
        "",
        "| embedder | misses, held out | misses, DEV | ms a face |",
        "|---|---|---|---|",
    ]
    for name in summary["embedders"]:
        eq = summary["equal_fmr"][name]
        if "refused" in eq:
            rows.append(f"| {name} | refused: {eq['refused']} | | {ms[name]:.2f} |")
            continue
        label = f"**{name}** (default)" if name == default else name
        rows.append(
            f"| {label} | {rate_cell(eq['heldout']['fnmr'])} | {rate_cell(eq['dev']['fnmr'])} | {ms[name]:.2f} |"
        )
    rows += [
        "",
        "Per group on DEV, each embedder at its own calibrated threshold (* = a group too small to size):",
        "",
        *group_rows(summary, "dev"),
        "",
        *summary["verdict"],
    ]
    return rows
