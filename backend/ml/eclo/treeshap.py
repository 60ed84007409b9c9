"""Exact TreeSHAP of one row from tables made when the model loads: several times cheaper than LightGBM's own.

A tree's SHAP values depend on a row only through the row's decision at each of the tree's splits: a shallow
tree (at most `MAX_SPLITS` splits) has few decision patterns, so its contributions, already summed into the
caller's groups (the API's input fields), are tabled by pattern. The tables come from LightGBM's own
`pred_contrib`, one representative row per reachable pattern, so they hold LightGBM's values; a prediction then
takes every split's decision in a few numpy operations and adds one table row per tree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

MAX_SPLITS = 10  # 2**10 table rows for a tree; deeper models keep LightGBM's own TreeSHAP
MAX_TABLE_ROWS = 1 << 17  # all trees together (the default model: 29,416 rows of 11 fields, 2.6 MB)
ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold: |x| at most this is zero for a zero-as-missing split


class TooDeep(ValueError):
    """A tree has more splits than MAX_SPLITS, or all trees more patterns than MAX_TABLE_ROWS: the tables would
    be too large."""


@dataclass
class _Split:
    feature: int
    categorical: bool
    threshold: float  # numerical splits: left when x <= threshold
    categories: frozenset[int]  # categorical splits: left when x is one of these
    missing: str  # LightGBM's missing_type: None, Zero or NaN
    default_left: bool


@dataclass
class _Tree:
    splits: list[_Split] = field(default_factory=list)


def _splits_of(node: dict[str, Any], tree: _Tree) -> None:
    if "split_index" not in node:
        return
    categorical = node["decision_type"] == "=="
    tree.splits.append(
        _Split(
            feature=int(node["split_feature"]),
            categorical=categorical,
            threshold=math.nan if categorical else float(node["threshold"]),
            categories=frozenset(int(c) for c in str(node["threshold"]).split("||")) if categorical else frozenset(),
            missing=node["missing_type"],
            default_left=bool(node["default_left"]),
        )
    )
    _splits_of(node["left_child"], tree)
    _splits_of(node["right_child"], tree)


class _Decisions:
    """The splits of some trees as flat arrays: `goes_left` follows LightGBM's NumericalDecision and
    CategoricalDecision. Its columns hold the numerical splits, then the categorical ones: `order[c]` is the
    split (in tree order) of column c."""

    def __init__(self, trees: list[_Tree]) -> None:
        splits = [s for t in trees for s in t.splits]
        categorical = np.array([s.categorical for s in splits], dtype=bool)
        numerical_at, categorical_at = np.flatnonzero(~categorical), np.flatnonzero(categorical)
        self.order = np.concatenate((numerical_at, categorical_at))
        self.column_of = np.argsort(self.order)
        self.numerical_feature = np.array([splits[i].feature for i in numerical_at], dtype=np.intp)
        self.threshold = np.array([splits[i].threshold for i in numerical_at])
        missing = np.array([splits[i].missing for i in numerical_at])
        self.default_left = np.array([splits[i].default_left for i in numerical_at], dtype=bool)
        self.zero_missing = missing == "Zero"
        self.any_zero_missing = bool(self.zero_missing.any())
        # Where NaN goes: a split with a missing branch sends it there; any other takes it as 0.0.
        self.nan_left = np.where((missing == "NaN") | self.zero_missing, self.default_left, 0.0 <= self.threshold)
        self.categorical_feature = np.array([splits[i].feature for i in categorical_at], dtype=np.intp)
        most = max((max(splits[i].categories, default=0) for i in categorical_at), default=0)
        # One row of columns a categorical split: "right" (NaN, -1 and below), the codes 0..most, past them.
        width = most + 3
        left = np.zeros((len(categorical_at), width), dtype=bool)
        for row, i in enumerate(categorical_at):
            left[row, [c + 1 for c in splits[i].categories]] = True
        self.category_left = left.ravel()
        self.category_offsets = np.arange(len(categorical_at), dtype=np.intp) * width + 1
        self.past_categories = float(most + 1)

    def goes_left(self, X: np.ndarray) -> np.ndarray:
        """Booleans of one row (1-d) or of rows (2-d), one column per split in `order`."""
        values = X.take(self.numerical_feature, axis=-1)
        left = values <= self.threshold
        nan = np.isnan(values)
        if nan.any():
            left = np.where(nan, self.nan_left, left)
        if self.any_zero_missing:
            left = np.where(self.zero_missing & (np.abs(values) <= ZERO_THRESHOLD), self.default_left, left)
        if not self.category_offsets.size:
            return left
        # C's int cast truncates (-0.5 is category 0); fmax takes -1.0 over NaN
        codes = np.fmin(np.fmax(X.take(self.categorical_feature, axis=-1), -1.0), self.past_categories)
        categories = codes.astype(np.intp) + self.category_offsets
        return np.concatenate((left, self.category_left.take(categories)), axis=-1)


def _candidates(splits: list[_Split]) -> list[float]:
    """Values of one feature that reach every region its splits in one tree separate."""
    values = {math.nan, 0.0, -1.0}
    for s in splits:
        if s.categorical:
            values.update(float(c) for c in s.categories)
        else:
            values.update((s.threshold, float(np.nextafter(s.threshold, math.inf))))
    return sorted(values, key=lambda v: (math.isnan(v), v))


def _representatives(tree: _Tree, decisions: _Decisions, num_features: int) -> Iterator[np.ndarray]:
    """Rows that reach every decision pattern of one tree that any row can: each feature's candidates, one per
    distinct set of decisions on its own splits, combined across features."""
    by_feature: dict[int, list[int]] = {}
    for k, s in enumerate(tree.splits):
        by_feature.setdefault(s.feature, []).append(k)
    choices: list[list[float]] = []
    for feature, ks in by_feature.items():
        values = _candidates([tree.splits[k] for k in ks])
        X = np.zeros((len(values), num_features))
        X[:, feature] = values
        own = decisions.goes_left(X)[:, decisions.column_of[ks]]
        seen: dict[bytes, float] = {}
        for value, row in zip(values, own, strict=True):
            seen.setdefault(row.tobytes(), value)
        choices.append(list(seen.values()))
    features = list(by_feature)
    for combo in itertools.product(*choices):
        row = np.zeros(num_features)
        row[features] = combo
        yield row


class TreeShapTables:
    """`contributions(row)`: LightGBM's TreeSHAP of one row, summed by `groups` (a (features + 1, groups) matrix:
    each feature's and the bias's share of each group), from per-tree tables of decision patterns."""

    def __init__(self, booster: lgb.Booster, groups: np.ndarray) -> None:
        dump = booster.dump_model()
        trees = []
        for info in dump["tree_info"]:
            tree = _Tree()
            _splits_of(info["tree_structure"], tree)
            if len(tree.splits) > MAX_SPLITS:
                raise TooDeep(f"a tree has {len(tree.splits)} splits; tables take at most {MAX_SPLITS}")
            trees.append(tree)
        sizes = [len(t.splits) for t in trees]
        rows = sum(1 << n for n in sizes)
        if rows > MAX_TABLE_ROWS:
            raise TooDeep(f"{len(trees)} trees have {rows:,} decision patterns; the tables take {MAX_TABLE_ROWS:,}")
        num_features = booster.num_feature()
        self.decisions = _Decisions(trees)
        bit = np.concatenate([1 << np.arange(n) for n in sizes]).astype(np.float64)  # of each split in its tree
        self._bit = bit[self.decisions.order]
        self._tree_of = np.repeat(np.arange(len(trees)), sizes)[self.decisions.order]
        self._table_starts = np.cumsum([0, *[1 << n for n in sizes[:-1]]]).astype(np.intp)
        self._ones = np.ones(len(trees))
        self.table = np.full((rows, groups.shape[1]), np.nan)  # NaN: no row gets there
        for t, tree in enumerate(trees):
            own = _Decisions([tree])  # the same decisions, on this tree's splits alone
            reps = np.array(list(_representatives(tree, own, num_features)))
            patterns = own.goes_left(reps) @ (1 << own.order)
            unique, first = np.unique(patterns, return_index=True)
            contributions = booster.predict(reps[first], pred_contrib=True, start_iteration=t, num_iteration=1)
            self.table[self._table_starts[t] + unique] = contributions @ groups

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """One float64 row's contributions by group: its pattern in each tree, then one table row per tree."""
        patterns = np.bincount(self._tree_of, weights=self.decisions.goes_left(row) * self._bit,
                               minlength=len(self._ones))  # fmt: skip
        return self._ones @ self.table.take(patterns.astype(np.intp) + self._table_starts, axis=0)
