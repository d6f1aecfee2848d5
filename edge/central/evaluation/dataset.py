"""Labeled image sets as the comparisons an evaluation makes: which images, which pairs, which group.

Two inputs, one shape:
- a pairs file (the columns of `../shared/data/pairs.csv`): each row is one comparison; it
  belongs to a group when both images carry the same group label;
- an identities file (the columns of `identities.csv`): every image is compared with every
  other, so a group's false match rate rests on every impostor comparison inside it. Images of
  one identity make genuine pairs, of different identities impostor pairs. With a `within`
  column (default `source`), only images with the same value are compared: the same person
  can carry different identity labels in different sources (`deepface_c01` is Angelina Jolie),
  and such a pair is not an impostor pair.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import OperatorError

CHUNK = 1_000_000  # pairs per step where a whole-array expression would copy tens of millions


class DatasetError(OperatorError, ValueError):
    """A labeled file cannot be read as asked (missing file, column or duplicate image)."""


@dataclass(frozen=True)
class Dataset:
    """Images (described once each) and the pairs between them; `pair_group` is -1 across groups.

    Pair arrays are compact (int32 indices, int8 groups): an all-against-all set has tens of
    millions of pairs."""

    csv_path: Path
    root: Path
    kind: str  # "pairs" or "identities"
    group_column: str
    within: str | None  # identities: the column two compared images share, if any
    description: str
    images: tuple[str, ...]
    identities: tuple[str, ...]
    groups: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    genuine: np.ndarray
    pair_group: np.ndarray

    def group_mask(self, group: str | None) -> np.ndarray:
        """Pairs of `group` (both images in it); all pairs for None."""
        if group is None:
            return np.ones(self.a.size, bool)
        return self.pair_group == self.groups.index(group)

    def group_members(self, group: str | None) -> np.ndarray:
        """Indices of the images that take part in the group's pairs."""
        mask, seen = self.group_mask(group), np.zeros(len(self.images), bool)
        for start in range(0, self.a.size, CHUNK):  # in chunks: no copy of a large group's pairs
            end = start + CHUNK
            seen[self.a[start:end][mask[start:end]]] = True
            seen[self.b[start:end][mask[start:end]]] = True
        return np.flatnonzero(seen)


def _rows(path: Path, required: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(f"labeled file not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path} lacks the column(s) {', '.join(missing)}; it has {reader.fieldnames}")
        return list(reader)


def read_pairs(path: Path, root: Path, group_column: str = "group") -> Dataset:
    """A pairs file: path_a, path_b, same (1/0), identity_a, identity_b, <group>_a, <group>_b."""
    ga, gb = f"{group_column}_a", f"{group_column}_b"
    rows = _rows(path, ["path_a", "path_b", "same", "identity_a", "identity_b", ga, gb])
    labels: dict[str, tuple[str, str]] = {}
    for row in rows:
        labels.setdefault(row["path_a"], (row["identity_a"], row[ga]))
        labels.setdefault(row["path_b"], (row["identity_b"], row[gb]))
    images = tuple(sorted(labels))
    index = {p: i for i, p in enumerate(images)}
    groups = tuple(sorted({g for _, g in labels.values() if g}))
    pair_group = [groups.index(r[ga]) if r[ga] and r[ga] == r[gb] else -1 for r in rows]
    same = [r["same"].strip().lower() in ("1", "true", "yes") for r in rows]
    return Dataset(
        csv_path=path,
        root=root,
        kind="pairs",
        group_column=group_column,
        within=None,
        description=f"{path.name} (labeled pairs)",
        images=images,
        identities=tuple(labels[p][0] for p in images),
        groups=groups,
        a=np.array([index[r["path_a"]] for r in rows], np.int32),
        b=np.array([index[r["path_b"]] for r in rows], np.int32),
        genuine=np.array(same, bool),
        pair_group=np.array(pair_group, np.int8),
    )


def read_identities(path: Path, root: Path, group_column: str = "group", within: str | None = "source") -> Dataset:
    """An identities file (path, identity, <group>[, <within>]) compared all against all.

    `within` names a column whose value two images must share to be compared; it is ignored
    when the file has no such column.
    """
    rows = _rows(path, ["path", "identity", group_column])
    paths = [r["path"] for r in rows]
    if len(set(paths)) != len(paths):
        duplicate = next(p for p in paths if paths.count(p) > 1)
        raise DatasetError(f"{path} lists {duplicate} more than once")
    identity = np.array([r["identity"] for r in rows])
    group_names = [r[group_column] for r in rows]
    groups = tuple(sorted({g for g in group_names if g}))
    if len(groups) > np.iinfo(np.int8).max:
        raise DatasetError(f"{path} has {len(groups)} values in {group_column}; at most 127 groups are supported")
    code = np.array([groups.index(g) if g else -1 for g in group_names], np.int8)
    person = np.unique(identity, return_inverse=True)[1]
    column = within if within and rows and within in rows[0] else None  # None: compare all
    source = np.array([r[column] for r in rows]) if column is not None else None
    a, b = _all_pairs(len(rows), source)
    scope = f"all against all within {column}" if column else "all against all"
    return Dataset(
        csv_path=path,
        root=root,
        kind="identities",
        group_column=group_column,
        within=column,
        description=f"{path.name} ({scope})",
        images=tuple(paths),
        identities=tuple(identity.tolist()),
        groups=groups,
        a=a,
        b=b,
        genuine=_chunked(lambda i, j: person[i] == person[j], a, b, bool),
        pair_group=_chunked(lambda i, j: np.where((code[i] == code[j]) & (code[i] >= 0), code[i], -1), a, b, np.int8),
    )


def _all_pairs(n: int, source: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Every (i < j) pair, as int32 indices filled in one row at a time (the cohort has ~48
    million), keeping only pairs with the same `source` when given."""

    def row(i: int) -> np.ndarray:
        j = np.arange(i + 1, n, dtype=np.int32)
        return j if source is None else j[source[j] == source[i]]

    counts = np.array([n - 1 - i if source is None else row(i).size for i in range(n)], np.int64)
    a = np.repeat(np.arange(n, dtype=np.int32), counts)
    b = np.empty(a.size, np.int32)
    ends = np.cumsum(counts)
    for i in range(n):
        b[ends[i] - counts[i] : ends[i]] = row(i)
    return a, b


def _chunked(f, a: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
    """f(a, b) elementwise, computed `CHUNK` pairs at a time into an array of `dtype`."""
    out = np.empty(a.size, dtype)
    for start in range(0, a.size, CHUNK):
        out[start : start + CHUNK] = f(a[start : start + CHUNK], b[start : start + CHUNK])
    return out
