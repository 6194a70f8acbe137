"""The analysis results a page or the CLI shows, as plain records: the function-vector report,
the h-vector sweep, and heads ranked by effect. They import no model code (no nnsight, no
transformers), so a request answered from stored results (:mod:`core.result_files`) starts in
about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from core.stats import Accuracy
from core.stats import curve as accuracy_curve
from core.vectors import Vector


def top_heads(cie: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """The ``k`` heads of largest effect in ``cie [n_layers, n_heads]``, largest first, as
    (layer, head); heads not measured (NaN: an attribution over some layers) come last (a
    descending sort would put NaN first). (``divmod``, not ``torch.unravel_index``, which
    imports sympy: half a second.)"""
    n_heads = cie.shape[1]
    scores = torch.nan_to_num(cie.flatten().float(), nan=float("-inf"))
    return [divmod(int(i), n_heads) for i in torch.argsort(scores, descending=True)[:k].tolist()]


@dataclass
class FVReport:
    heads: list[tuple[int, int]]
    layer: int
    layer_choice: str
    icl_accuracy: float
    zero_shot_baseline: float
    zero_shot_by_layer: list[float]
    zero_shot_with_fv: float
    shuffled_baseline: float
    shuffled_with_fv: float
    hvector_by_layer: list[float]
    hvector_best_layer: int
    hvector_best_accuracy: float
    valid_by_layer: list[float]
    heads_curve: list[float]  # accuracy with the top-1..k heads at the chosen layer
    decoded_tokens: list[tuple[str, float]]
    n_eval: int
    coeff: float
    overlap: bool  # evaluation queries overlap the build queries (tiny task)
    vector: Vector  # the function vector evaluated here (coefficient 1), ready to save
    examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    n_valid: int = 0  # queries behind valid_by_layer (the layer-choice queries; 0 for a given layer)
    # whole-answer accuracy of greedy generations (core.generation_scoring), on the test queries
    zero_shot_generation_accuracy: float = 0.0
    zero_shot_with_fv_generation_accuracy: float = 0.0
    generation_max_new_tokens: int = 0
    generation_case_sensitive: bool = False
    # the heads of heads_curve's points in order: the attribution's top heads (which need not be
    # ``heads``: those may be picked by hand)
    curve_heads: list[tuple[int, int]] = field(default_factory=list)

    # accuracies measured on the n_eval test queries; valid_by_layer is on n_valid queries
    TEST_ACCURACIES = (
        "icl_accuracy",
        "zero_shot_baseline",
        "zero_shot_with_fv",
        "shuffled_baseline",
        "shuffled_with_fv",
        "hvector_best_accuracy",
        "zero_shot_generation_accuracy",
        "zero_shot_with_fv_generation_accuracy",
    )
    TEST_CURVES = ("zero_shot_by_layer", "hvector_by_layer", "heads_curve")

    def accuracy(self, name: str) -> Accuracy:
        """One of :attr:`TEST_ACCURACIES` with its number of queries and 95% interval."""
        if name not in self.TEST_ACCURACIES:
            raise KeyError(name)
        return Accuracy.of(getattr(self, name), self.n_eval)

    def curve(self, name: str) -> list[Accuracy]:
        """A per-layer (or per-head-count) curve, one :class:`Accuracy` per point."""
        if name == "valid_by_layer":
            return accuracy_curve(self.valid_by_layer, self.n_valid)
        if name not in self.TEST_CURVES:
            raise KeyError(name)
        return accuracy_curve(getattr(self, name), self.n_eval)

    @property
    def best_test_layer(self) -> int:
        """The layer with the highest zero-shot + FV accuracy on the test queries (first of
        ties): what the layer choice, which never sees them, is measured against."""
        return max(range(len(self.zero_shot_by_layer)), key=lambda l: self.zero_shot_by_layer[l])

    def to_json(self) -> dict:
        """The numbers (the vector's values are saved as a vector file, not here). Each
        accuracy ``k`` has ``k_ci`` beside it (``{"n", "low", "high"}``, a list for curves)."""
        d = {}
        for f in fields(self):
            if f.name == "vector":
                continue
            d[f.name] = getattr(self, f.name)
            if f.name in self.TEST_ACCURACIES:
                d[f.name + "_ci"] = self.accuracy(f.name).to_json()
            elif f.name in self.TEST_CURVES or f.name == "valid_by_layer":
                d[f.name + "_ci"] = [a.to_json() for a in self.curve(f.name)]
        d["heads"] = [list(h) for h in self.heads]
        d["curve_heads"] = [list(h) for h in self.curve_heads]
        d["decoded_tokens"] = [[t, s] for t, s in self.decoded_tokens]
        d["examples"] = [dict(row) for row in self.examples]
        d["best_test_layer"] = self.best_test_layer
        return d


@dataclass(frozen=True)
class HVectorSweep:
    """Zero-shot top-1 accuracy on held-out queries with the h-vector of each layer added at
    the last token (Todd et al. 2023, section 2.1), against the zero-shot and in-context
    baselines on the same queries."""

    zero_shot_baseline: float
    by_layer: tuple[float, ...]  # [n_layers]
    icl_accuracy: float
    n_eval: int
    overlap: bool  # evaluation queries overlap the prompts the h-vector was averaged over

    @property
    def best_layer(self) -> int:
        """The layer with the highest accuracy (the first of ties)."""
        return max(range(len(self.by_layer)), key=lambda l: self.by_layer[l])

    def accuracy(self, value: float) -> Accuracy:
        """An accuracy of this sweep (all on the same ``n_eval`` queries) with its interval."""
        return Accuracy.of(value, self.n_eval)

    @property
    def curve(self) -> list[Accuracy]:
        return accuracy_curve(self.by_layer, self.n_eval)
