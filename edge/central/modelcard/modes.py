"""The model card's sections on the two matching modes: side by side, the cohort-scale calibration,
why the cohort model is what it is, and how far an x86 calibration holds on an aarch64 board.

Pure functions of report.json (as `edge.central.modelcard.card`): the calibration table, its FMR
curves and the side-by-side comparison travel in the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.central.evaluation.report import mode_section, percent
from edge.central.evaluation.stats import min_comparisons
from edge.central.modelcard.text import COHORT_CHOICE

COHORT_TARGETS = (1e-3, 1e-4, 1e-5, 1e-6)
ARM_SHIFTS = (("p95", 0.011), ("max", 0.021))  # pair-distance moves x86 -> aarch64, ../shared/notes/arm64.md


def side_by_side(report: dict[str, Any]) -> list[str]:
    """Both modes per group at their entries for the default target (the eval report's table)."""
    return mode_section(report)


def _counts(entries: list[dict[str, Any]]) -> tuple[int, list[int]]:
    """(impostor comparisons overall, per group, largest first) the entries were measured on."""
    groups = [row["impostor_pairs"] for row in entries[0]["groups"].values()]
    overall = [e["impostor_pairs"] for e in entries if e["scope"] == "overall"]
    return (overall[0] if overall else sum(groups)), sorted(groups, reverse=True)


def cohort_choice(report: dict[str, Any]) -> list[str]:
    """What the cohort model is, and the DEV comparison its parameters were chosen by (when its file has one)."""
    cohort = report["models"].get("cohort")
    if cohort is None:
        return ["No cohort model: this report's embedder has none, so it was scored with one global threshold."]
    lines = [COHORT_CHOICE.format(**{"k": cohort["centroids"], **cohort})]  # older reports have no "k"
    selection = cohort.get("selection")
    if not selection:
        return [*lines, "", "Its file records no comparison of parameters."]
    lines += [
        "",
        f"FNMR on `{selection['dataset']}` at the {selection['scope']} target {selection['target_fmr']:g}, each "
        "setting with its own knob (the chosen one in bold):",
        "",
        "| setting | knob | FNMR | worst group's FMR (group) | overall FMR |",
        "|---|---|---|---|---|",
    ]
    for row in selection["rows"]:
        chosen = (row.get("k"), row.get("quantile")) == (cohort.get("k"), cohort["quantile"])
        name = f"**{row['name']}**" if chosen else row["name"]
        lines.append(
            f"| {name} | {row['knob']:.4f} | {row['fnmr']:.1%} | {row['worst_group_fmr']:.2%} "
            f"({row['deciding_group']}) | {row['overall_fmr']:.2g} |"
        )
    return lines


def cohort_rows(report: dict[str, Any]) -> list[str]:
    """Every target of `COHORT_TARGETS`, overall and worst group, for the entries measured on the
    cohort's groups (gender): the entry when calibrated, else what the rule of three supports."""
    entries = [e for e in report["calibration"]["entries"] if e.get("group_column", "group") == "gender"]
    if not entries:
        return ["No cohort-scale calibration in this report's manifest (see the commands at the end)."]
    total, groups = _counts(entries)
    rows = [
        f"Measured on `{entries[0]['dataset_file']}` ({entries[0]['dataset']}, sha256 "
        f"`{entries[0]['dataset_sha256'][:12]}`): {total:,} impostor comparisons, within each gender "
        + ", ".join(f"{g} {row['impostor_pairs']:,}" for g, row in entries[0]["groups"].items())
        + ". Worst group: the stricter of the genders. The last column is the same knob on this card's "
        "data, whose groups the cohort (mostly white, male) does not speak for.",
        "",
        "| mode | target FMR | scope | threshold (knob) | measured FMR (k/n, 95% interval) | set by | "
        "here: worst sizeable group's FMR |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in COHORT_TARGETS:
        need = min_comparisons(target)
        for scope in ("overall", "worst_group"):
            found = [e for e in entries if e["target_fmr"] == target and e["scope"] == scope]
            for e in found:
                k = round(e["fmr"] * e["impostor_pairs"])
                lo, hi = e["fmr_ci95"]
                rows.append(
                    f"| {e.get('mode', 'global')} | {target:g} | {scope} | {e['threshold']:.4f} | "
                    f"{e['fmr']:.3g} ({k}/{e['impostor_pairs']:,}, {lo:.3g}-{hi:.3g}) | "
                    f"{e['deciding_group'] or 'all pairs'} | {_worst_here(report, e)} |"
                )
            if found:
                continue
            have = total if scope == "overall" else (groups[1] if len(groups) > 1 else 0)
            why = (
                f"supported ({have:,} >= {need:,}), not calibrated"
                if have >= need
                else f"**not supported**: needs {need:,} comparisons"
                + (" in each of 2 groups; the second largest has " if scope == "worst_group" else ", has ")
                + f"{have:,}"
            )
            rows.append(f"| both | {target:g} | {scope} | - | {why} | - | - |")
    return rows


def _worst_here(report: dict[str, Any], entry: dict[str, Any]) -> str:
    """The worst sizeable group's FMR of the evaluated set at `entry`'s threshold, as k/n."""
    mode = entry.get("mode", "global")
    point = next(
        (
            p
            for p in report.get("operating_points", [])
            if p.get("mode", "global") == mode and p["threshold"] == entry["threshold"]
        ),
        None,
    )
    if point is None:
        return "-"
    sizeable = [g for g, row in report["groups"].items() if row["sizeable"]]
    rates = [(point["groups"][g]["fmr"], g) for g in sizeable]
    rates = [(r, g) for r, g in rates if r["n"]]
    if not rates:
        return "-"
    worst, group = max(rates, key=lambda rg: rg[0]["k"] / rg[0]["n"])
    return f"{group} {100 * worst['k'] / worst['n']:.2g}% ({worst['k']}/{worst['n']})"


def _curve_fmr(curve: dict[str, Any], scope: str, threshold: float) -> float | None:
    thresholds, values = np.asarray(curve["thresholds"], float), curve[scope]
    if values[0] is None or not thresholds[0] <= threshold <= thresholds[-1]:
        return None
    return float(np.interp(threshold, thresholds, np.asarray(values, float)))


def arm_rows(report: dict[str, Any]) -> list[str]:
    """FMR at the default threshold, and at it moved by the x86 -> aarch64 distance shifts, read off
    the calibration curve of the mode in force (linear between its 0.01 steps)."""
    mode, threshold = report["threshold"]["mode"], report["threshold"]["value"]
    curve = report["calibration"].get("fmr_curves", {}).get(mode)
    if not curve:
        return [f"No {mode} FMR curve in the report: the shift cannot be put in FMR terms."]
    rows = [
        "| threshold (knob) | FMR overall | FMR worst group |",
        "|---|---|---|",
    ]
    for label, shift in (("as calibrated", 0.0), *ARM_SHIFTS):
        t = threshold + shift
        cells = []
        for scope in ("overall", "worst_group"):
            value = _curve_fmr(curve, scope, t)
            cells.append("n/a" if value is None else percent(value))
        rows.append(f"| {t:.4f} ({label}{f' +{shift}' if shift else ''}) | {cells[0]} | {cells[1]} |")
    return [
        "The int8 kernels differ by CPU: on aarch64 (XNNPACK NEON, measured under emulation, "
        "`../shared/notes/arm64.md`) pair distances move from x86 by a median 0.004, p95 0.011, max "
        "0.021, and 20 of 11,175 decisions at 0.4125 flip. A shift of the distances by d acts like a "
        "threshold moved by d (in mode per_template by d / scale, about d at the median scale). "
        f"Read off the {mode} calibration curve ({curve.get('dataset_file', 'the calibration set')}):",
        "",
        *rows,
        "",
        "So an x86 calibration holds on a board to within the FMR of the p95 row for most pairs and the "
        "max row at worst; a board whose kernels differ again (Pi 4 A72, Pi 5 A76, Jetson) should be "
        "calibrated on itself: `edge calibrate` and `edge eval` run there (the PNGs need matplotlib, and "
        "are skipped without it).",
    ]
