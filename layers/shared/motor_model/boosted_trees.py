"""An XGBoost binary:logistic tree ensemble evaluated in plain Python: probabilities and TreeSHAP contributions.

InferenceMode embedded runs the model inside InferenceFunction with this module instead of XGBoost, so the
function needs no 230 MB of XGBoost, NumPy and SciPy and its first prediction costs tens of milliseconds
rather than a second (docs/architecture.md, "Embedded inference", has the measurements). It reads the
booster in XGBoost's JSON format, which model/train.py writes into the artifact beside `xgboost-model`
(motor_model.artifact), and computes what the endpoint's code/inference.py computes with XGBoost 3.0.5:

- a probability as `Booster.inplace_predict` gives it: every tree (a `best_iteration` attribute does not
  cut the sum, as it does not there), features as float32, a missing value (NaN) taking each split's
  learned default branch, then the sigmoid of base margin + leaf values;
- per-feature contributions to the log-odds as `predict(pred_contribs=True)` gives them: the
  path-dependent TreeSHAP of Lundberg et al. (2018), Algorithm 2, with node covers (`sum_hessian`) as
  the weights, the bias (expected value) last.

XGBoost sums in float32 and this module in float64: probabilities agree to about 1e-6, contributions to
about 1e-5 (tests/unit/test_boosted_trees.py checks both against XGBoost). Only what train.py can
produce is accepted: gbtree, binary:logistic, one output, numerical splits. Anything else is a
ModelFormatError at load, never a wrong answer later.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

FEATURE_NAMES_ATTR = "feature_names"
"""The booster attribute model/train.py stores the training feature order in (model/inference.py reads it too)."""
CODEGEN_MAX_DEPTH = 40
"""Deeper trees are walked node by node: Python's parser refuses very deep nested blocks."""
CODEGEN_TREES = 25
"""Trees per generated function."""


class ModelFormatError(ValueError):
    """The file is not a booster this module can evaluate exactly as XGBoost would."""


@dataclass(frozen=True, slots=True)
class _Tree:
    left: list[int]  # -1 for a leaf
    right: list[int]
    feature: list[int]
    threshold: list[float]  # a leaf's value, for a leaf (XGBoost keeps it in split_conditions)
    default_left: list[bool]
    cover: list[float]
    mean: list[float]  # the cover-weighted mean leaf value below each node
    depth: int

    def is_leaf(self, node: int) -> bool:
        return self.left[node] == -1

    def next_node(self, node: int, x: Sequence[float]) -> int:
        """The child a row takes: NaN (missing) the default, else left when below the split."""
        value = x[self.feature[node]]
        if math.isnan(value):
            return self.left[node] if self.default_left[node] else self.right[node]
        return self.left[node] if value < self.threshold[node] else self.right[node]

    def leaf_value(self, x: Sequence[float]) -> float:
        node = 0
        while self.left[node] != -1:
            node = self.next_node(node, x)
        return self.threshold[node]


class BoostedTrees:
    """One binary:logistic booster, loaded once per execution environment; rows in float64, answers in float64."""

    def __init__(self, trees: list[_Tree], *, base_margin: float, feature_names: list[str]) -> None:
        self._trees = trees
        self.base_margin = base_margin
        self.feature_names = feature_names
        self.num_features = len(feature_names)
        self._margin = _compiled_margin(trees, base_margin) or self._walked_margin

    @classmethod
    def load(cls, data: bytes) -> BoostedTrees:
        """From the bytes of a booster in XGBoost's JSON format (`Booster.save_raw(raw_format="json")`)."""
        try:
            document = json.loads(data)
        except ValueError as exc:  # UnicodeDecodeError too: UBJSON, XGBoost's binary format, is not text
            raise ModelFormatError(f"not an XGBoost JSON model: {exc}") from exc
        if not isinstance(document, dict):
            raise ModelFormatError(f"not an XGBoost JSON model: a JSON {type(document).__name__}")
        try:
            return _from_document(document)
        except ModelFormatError:
            raise
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ModelFormatError(f"malformed XGBoost model: {type(exc).__name__}: {exc}") from exc

    def probability(self, row: Sequence[float]) -> float:
        """P(failure) for one row of `num_features` values, NaN for a missing one."""
        margin = self._margin(float32(row))
        if margin >= 0:
            return 1.0 / (1.0 + math.exp(-margin))
        odds = math.exp(margin)
        return odds / (1.0 + odds)

    def contributions(self, row: Sequence[float]) -> list[float]:
        """Each feature's TreeSHAP contribution to the row's log-odds, then the bias; they sum to the margin."""
        x = float32(row)
        phi = [0.0] * (self.num_features + 1)
        for tree in self._trees:
            phi[-1] += tree.mean[0]
            _TreeShap(tree, x, phi).run()
        phi[-1] += self.base_margin
        return phi

    def _walked_margin(self, x: Sequence[float]) -> float:
        return self.base_margin + math.fsum(tree.leaf_value(x) for tree in self._trees)


def float32(row: Sequence[float]) -> list[float]:
    """The row as XGBoost sees it: each value rounded to float32 (NaN stays NaN)."""
    return array("f", row).tolist()


def _from_document(document: dict[str, Any]) -> BoostedTrees:
    learner = document["learner"]
    objective = learner["objective"]["name"]
    if objective != "binary:logistic":
        raise ModelFormatError(f"objective {objective!r}: only binary:logistic is supported")
    booster = learner["gradient_booster"]
    if booster["name"] != "gbtree":
        raise ModelFormatError(f"booster {booster['name']!r}: only gbtree is supported")
    params = learner["learner_model_param"]
    if int(params.get("num_target", "1")) != 1 or int(params.get("num_class", "0")) > 1:
        raise ModelFormatError("a multi-output model: only one probability per row is supported")
    count = int(params["num_feature"])
    base_score = _base_score(params["base_score"])
    model = booster["model"]
    if any(group != 0 for group in model["tree_info"]):
        raise ModelFormatError("trees for more than one output group")
    trees = [_tree(raw, count) for raw in model["trees"]]
    if len(trees) != int(model["gbtree_model_param"]["num_trees"]):
        raise ModelFormatError(f"{len(trees)} trees listed, {model['gbtree_model_param']['num_trees']} declared")
    return BoostedTrees(
        trees,
        base_margin=math.log(base_score / (1.0 - base_score)),
        feature_names=_feature_names(learner, count),
    )


def _base_score(text: str) -> float:
    """'5E-1' (XGBoost 3.0) or '[5E-1]' (3.1): binary:logistic keeps it as a probability."""
    values = [float(part) for part in str(text).strip("[]").split(",") if part.strip()]
    if len(values) != 1 or not 0.0 < values[0] < 1.0:
        raise ModelFormatError(f"base_score {text!r} is not one probability")
    return values[0]


def _feature_names(learner: dict[str, Any], count: int) -> list[str]:
    """As model/inference.py's feature_names: the attribute train.py sets, else XGBoost's f0, f1, ..."""
    text = learner.get("attributes", {}).get(FEATURE_NAMES_ATTR)
    listed = text.split(",") if isinstance(text, str) and text else []
    return listed if len(listed) == count else [f"f{index}" for index in range(count)]


def _tree(raw: dict[str, Any], num_features: int) -> _Tree:
    left = [int(node) for node in raw["left_children"]]
    right = [int(node) for node in raw["right_children"]]
    feature = [int(index) for index in raw["split_indices"]]
    threshold = float32([float(value) for value in raw["split_conditions"]])  # JSON prints them shortest
    default_left = [bool(flag) for flag in raw["default_left"]]
    cover = float32([float(value) for value in raw["sum_hessian"]])
    size = len(left)
    if not size or any(len(column) != size for column in (right, feature, threshold, default_left, cover)):
        raise ModelFormatError(f"tree {raw.get('id')}: node arrays of different lengths")
    if any(int(kind) != 0 for kind in raw.get("split_type", ())):
        raise ModelFormatError(f"tree {raw.get('id')}: categorical splits are not supported")
    if int(raw.get("tree_param", {}).get("size_leaf_vector", "1")) > 1:
        raise ModelFormatError(f"tree {raw.get('id')}: vector leaves are not supported")
    order = _preorder(left, right, raw.get("id"))
    for node in order:
        if left[node] != -1 and not 0 <= feature[node] < num_features:
            raise ModelFormatError(f"tree {raw.get('id')}: node {node} splits on feature {feature[node]}")
    if any(not math.isfinite(value) for value in threshold):
        raise ModelFormatError(f"tree {raw.get('id')}: a split or leaf value is not finite")
    mean = list(threshold)
    depth = [0] * size
    for node in reversed(order):  # children before parents
        if left[node] != -1:
            a, b = left[node], right[node]
            weight = cover[node]
            mean[node] = (mean[a] * cover[a] + mean[b] * cover[b]) / weight if weight else 0.0
            depth[node] = 1 + max(depth[a], depth[b])
    return _Tree(left, right, feature, threshold, default_left, cover, mean, depth[0])


def _preorder(left: list[int], right: list[int], tree_id: Any) -> list[int]:
    """The nodes reachable from the root, each once, parents first; a cycle or a dangling child is an error."""
    order: list[int] = []
    seen = [False] * len(left)
    stack = [0]
    while stack:
        node = stack.pop()
        if not 0 <= node < len(left) or seen[node]:
            raise ModelFormatError(f"tree {tree_id}: node {node} is out of range or reached twice")
        seen[node] = True
        order.append(node)
        if left[node] != -1:
            stack.extend((right[node], left[node]))
        elif right[node] != -1:
            raise ModelFormatError(f"tree {tree_id}: node {node} has a right child and no left one")
    return order


def _compiled_margin(trees: list[_Tree], base_margin: float) -> Callable[[Sequence[float]], float] | None:
    """The ensemble as Python functions of nested ifs, about 3x faster than walking the nodes.

    Built only from the model's integers and floats (repr round-trips a float exactly). A NaN compares
    false, so a default-left split is written `not (x >= t)` and a default-right one `x < t`. The trees
    are compiled CODEGEN_TREES at a time: one function for all of them would cost the compiler several
    times the memory for the same speed. None when a tree is too deep for the parser: the caller walks
    the trees instead.
    """
    if any(tree.depth > CODEGEN_MAX_DEPTH for tree in trees):
        return None
    parts = [_compiled_sum(trees[start : start + CODEGEN_TREES]) for start in range(0, len(trees), CODEGEN_TREES)]

    def margin(x: Sequence[float]) -> float:
        total = base_margin
        for part in parts:
            total += part(x)
        return total

    return margin


def _compiled_sum(trees: list[_Tree]) -> Callable[[Sequence[float]], float]:
    lines = ["def trees(x):", "    s = 0.0"]
    for tree in trees:
        stack: list[tuple[int, int, bool]] = [(0, 4, False)]
        while stack:
            node, indent, is_else = stack.pop()
            pad = " " * indent
            if is_else:
                lines.append(" " * (indent - 4) + "else:")
            if tree.is_leaf(node):
                lines.append(f"{pad}s += {tree.threshold[node]!r}")
                continue
            x, t = f"x[{tree.feature[node]:d}]", repr(tree.threshold[node])
            lines.append(f"{pad}if not ({x} >= {t}):" if tree.default_left[node] else f"{pad}if {x} < {t}:")
            stack.append((tree.right[node], indent + 4, True))
            stack.append((tree.left[node], indent + 4, False))
    lines.append("    return s")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<boosted trees>", "exec"), namespace)  # noqa: S102 - numbers only, see above
    function: Callable[[Sequence[float]], float] = namespace["trees"]
    return function


# TreeSHAP, path-dependent (Lundberg, Erion and Lee, "Consistent Individualized Feature Attribution for
# Tree Ensembles", 2018, Algorithm 2), as XGBoost's RegTree::CalculateContributions runs it with
# condition = 0. The path down to a node is four columns: the features split on, the fraction of
# the training cover that comes down (zero) or that the row brings down (one, 1 or 0), and the
# permutation weights.

_Path = list[list[Any]]


class _TreeShap:
    """One tree's contributions for one row, added to `phi`."""

    __slots__ = ("phi", "tree", "x")

    def __init__(self, tree: _Tree, x: Sequence[float], phi: list[float]) -> None:
        self.tree, self.x, self.phi = tree, x, phi

    def run(self) -> None:
        if not self.tree.is_leaf(0):
            self.visit(0, [[-1], [1.0], [1.0], [1.0]])

    def visit(self, node: int, path: _Path) -> None:
        tree = self.tree
        if tree.is_leaf(node):
            self.add_leaf(tree.threshold[node], path)
            return
        features, zeros, ones, _ = path
        hot = tree.next_node(node, self.x)
        left, right = tree.left[node], tree.right[node]
        cold = right if hot == left else left
        cover = tree.cover[node]
        split = tree.feature[node]
        incoming_zero = incoming_one = 1.0
        if split in features:  # split on higher up: undo that split, to redo it here
            index = features.index(split)
            incoming_zero, incoming_one = zeros[index], ones[index]
            _unwind(path, index)
        hot_zero = tree.cover[hot] / cover if cover else 0.0
        cold_zero = tree.cover[cold] / cover if cover else 0.0
        self.visit(hot, _extended(path, hot_zero * incoming_zero, incoming_one, split))
        self.visit(cold, _extended(path, cold_zero * incoming_zero, 0.0, split))

    def add_leaf(self, leaf: float, path: _Path) -> None:
        """Each feature on the path gets its share of the leaf: the unwound path's weight sum (inlined: hot)."""
        features, zeros, ones, weights = path
        depth = len(features) - 1
        scale = depth + 1
        last = weights[depth]
        phi = self.phi
        for i in range(1, depth + 1):
            one, zero = ones[i], zeros[i]
            total = 0.0
            if one != 0:
                next_one = last
                for j in range(depth - 1, -1, -1):
                    share = next_one * scale / ((j + 1) * one)
                    total += share
                    next_one = weights[j] - share * zero * (depth - j) / scale
            elif zero != 0:
                for j in range(depth - 1, -1, -1):
                    total += weights[j] / zero / ((depth - j) / scale)
            phi[features[i]] += total * (one - zero) * leaf


def _extended(path: _Path, zero_fraction: float, one_fraction: float, feature: int) -> _Path:
    """A child's path: the parent's, copied, with one more split."""
    features, zeros, ones, weights = path
    depth = len(features)
    scale = depth + 1
    weights = [*weights, 0.0]
    for i in range(depth - 1, -1, -1):
        weights[i + 1] += one_fraction * weights[i] * (i + 1) / scale
        weights[i] = zero_fraction * weights[i] * (depth - i) / scale
    return [[*features, feature], [*zeros, zero_fraction], [*ones, one_fraction], weights]


def _unwind(path: _Path, index: int) -> None:
    """Take the split at `index` out of the path, in place."""
    features, zeros, ones, weights = path
    depth = len(features) - 1
    zero_fraction, one_fraction = zeros[index], ones[index]
    next_one = weights[depth]
    for i in range(depth - 1, -1, -1):
        if one_fraction != 0:
            kept = weights[i]
            weights[i] = next_one * (depth + 1) / ((i + 1) * one_fraction)
            next_one = kept - weights[i] * zero_fraction * (depth - i) / (depth + 1)
        else:
            weights[i] = weights[i] * (depth + 1) / (zero_fraction * (depth - i))
    for column in (features, zeros, ones):
        del column[index]
    weights.pop()
