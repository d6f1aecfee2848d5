"""The calibration / verification chips of the model build: identity-disjoint halves,
stratified by group, deterministic, and cut by the device's own detector and aligner."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge.modelbuild.chips import LabeledImage, cut_chips, read_identities, split_images
from edge.vision.align import CHIP_SIZE


def labeled(groups: dict[str, int], images_per_identity: int = 3) -> list[LabeledImage]:
    """`count` identities per group, each with a few images, in file order."""
    return [
        LabeledImage(f"{group}/{i}/{k}.jpg", f"{group}-{i}", group)
        for group, count in groups.items()
        for i in range(count)
        for k in range(images_per_identity)
    ]


def test_halves_are_identity_disjoint_and_cover_every_image() -> None:
    images = labeled({"a": 4, "b": 3, "c": 1})
    calibration, verification = split_images(images)
    assert sorted(calibration + verification, key=images.index) == images
    assert not {i.identity for i in calibration} & {i.identity for i in verification}
    # within each group identities alternate, the first going to calibration
    assert {i.identity for i in calibration} == {"a-0", "a-2", "b-0", "b-2", "c-0"}
    assert split_images(images) == (calibration, verification)  # deterministic


def test_each_half_cycles_through_groups_then_takes_images_round_robin() -> None:
    calibration, _ = split_images(labeled({"a": 4, "b": 4, "c": 4}))
    first_round = calibration[:6]  # one first image of each calibration identity
    assert Counter(i.group for i in first_round) == {"a": 2, "b": 2, "c": 2}
    assert [i.path.endswith("/0.jpg") for i in first_round] == [True] * 6
    assert [i.group for i in first_round[:3]] == ["a", "b", "c"]


def test_unreadable_identities_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "identities.csv"
    bad.write_text("file,person\nx.jpg,someone\n")
    with pytest.raises(ValueError, match=str(bad)):
        read_identities(bad)
    with pytest.raises(ValueError, match="nope.csv"):
        read_identities(tmp_path / "nope.csv")


def test_chips_from_the_shared_data(data_dir: Path, stills_vision) -> None:
    images = read_identities(data_dir / "identities.csv")
    calibration, verification = split_images(images)
    assert len(calibration) + len(verification) == len(images)
    chips = cut_chips(stills_vision.detector, data_dir, calibration[:20], 6)
    assert chips.chips.shape == (6, CHIP_SIZE, CHIP_SIZE, 3) and chips.chips.dtype == np.uint8
    assert len(chips.images) == 6 and set(chips.images) <= set(calibration[:20])
    assert chips.chips.std() > 10  # faces, not blank chips
    with pytest.raises(ValueError, match="only 3 of the 4 chips"):
        cut_chips(stills_vision.detector, data_dir, list(chips.images[:3]), 4)
