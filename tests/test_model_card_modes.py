"""The model card's mode sections from hand-made report parts: cohort-scale rows say what the rule of
three supports, and the aarch64 section turns the measured distance shifts into FMRs off the curve."""

from __future__ import annotations

import pytest

from edge.central.modelcard.modes import arm_rows, cohort_rows


def cohort_entry(mode: str, target: float, scope: str, threshold: float) -> dict:
    return {
        "mode": mode,
        "target_fmr": target,
        "scope": scope,
        "threshold": threshold,
        "fmr": target * 0.9,
        "fmr_ci95": [target * 0.5, target * 1.4],
        "impostor_pairs": 46_708_724,
        "deciding_group": "female" if scope == "worst_group" else None,
        "group_column": "gender",
        "dataset": "people.csv (all against all)",
        "dataset_file": "../shared/data/lfw_cohort/people.csv",
        "dataset_sha256": "b3351fcc464e" + "0" * 52,
        "groups": {"female": {"impostor_pairs": 2_355_920}, "male": {"impostor_pairs": 28_056_506}},
    }


def test_cohort_rows_show_entries_and_what_the_rule_of_three_refuses():
    entries = [
        cohort_entry("per_template", 1e-4, "worst_group", 0.41),
        cohort_entry("global", 1e-6, "overall", 0.3833),
        {"target_fmr": 0.012, "scope": "worst_group", "group_column": "group"},  # DEV: not a cohort row
    ]
    text = "\n".join(cohort_rows({"calibration": {"entries": entries}}))
    assert (
        "| per_template | 0.0001 | worst_group | 0.4100 |" in text and "| global | 1e-06 | overall | 0.3833 |" in text
    )
    refused = "**not supported**: needs 3,000,000 comparisons in each of 2 groups; the second largest has 2,355,920"
    assert f"| both | 1e-06 | worst_group | - | {refused} |" in text
    assert "| both | 1e-05 | worst_group | - | supported (2,355,920 >= 300,000), not calibrated |" in text
    assert "0.012" not in text and "46,708,724 impostor comparisons, within each gender female 2,355,920" in text
    assert "| global | 1e-06 | overall | 0.3833 | 9e-07 (42/46,708,724, 5e-07-1.4e-06) | all pairs |" in text
    assert cohort_rows({"calibration": {"entries": entries[2:]}})[0].startswith("No cohort-scale calibration")


def test_arm_section_reads_the_shifted_thresholds_off_the_curve():
    curve = {
        "thresholds": [0.40, 0.41, 0.42, 0.43],
        "overall": [0.001, 0.002, 0.004, 0.008],
        "worst_group": [0.004, 0.008, 0.016, 0.032],
    }
    report = {
        "threshold": {"mode": "per_template", "value": 0.41},
        "calibration": {"fmr_curves": {"per_template": curve}},
    }
    text = "\n".join(arm_rows(report))
    assert "| 0.4100 (as calibrated) | 0.2% | 0.8% |" in text
    assert "| 0.4210 (p95 +0.011) | 0.44% | 1.76% |" in text  # linear between 0.42 and 0.43
    assert "| 0.4310 (max +0.021) | n/a | n/a |" in text  # past the curve: not guessed
    assert "median 0.004, p95 0.011, max 0.021" in text
    missing = arm_rows({"threshold": {"mode": "global", "value": 0.41}, "calibration": {}})
    assert missing == ["No global FMR curve in the report: the shift cannot be put in FMR terms."]


@pytest.mark.parametrize("mode", ["global", "per_template"])
def test_arm_section_names_the_mode_in_force(mode):
    curve = {"thresholds": [0.3, 0.5], "overall": [0.0, 0.02], "worst_group": [None, None]}
    report = {"threshold": {"mode": mode, "value": 0.4}, "calibration": {"fmr_curves": {mode: curve}}}
    text = "\n".join(arm_rows(report))
    assert f"Read off the {mode} calibration curve" in text and "| 0.4000 (as calibrated) | 1.00% | n/a |" in text
