"""The coefficient x layer sweep: where, and how strongly, a steering vector acts.

A steering vector's effect depends on the layer it is added at and on its coefficient: too
small does nothing, too large breaks the text. Both activation addition (Turner et al. 2023)
and contrastive activation addition (Rimsky et al. 2023) are tuned by sweeping the two. The
sweep continues one prompt greedily for every cell of the
grid, each layer with its own vector (a vector built from activations belongs to the layer
it was read at), and scores each text: the probability of a target word as the first new
token, or the fraction of keywords that appear.

One call covers the whole grid, so the grid limits in :mod:`core.limits` hold for the grid
as a whole. Each layer is one batched generation whose rows are the coefficients (the first
also carries the unsteered baseline row); each takes its own turns on the shared model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core import checks
from core.inference import Progress, first_token_ids, no_progress
from core.models import LoadedModel
from core.steer import Mode, generate_coeff_rows
from core.steering_vectors import mean_norm, relative_norm


@dataclass(frozen=True)
class SweepResult:
    """Greedy continuations of one prompt over a grid ``[n_coeffs][n_layers]``."""

    prompt: str
    mode: str
    layers: tuple[int, ...]
    coeffs: tuple[float, ...]
    texts: tuple[tuple[str, ...], ...]  # [n_coeffs][n_layers]
    scores: tuple[tuple[float, ...], ...] | None  # [n_coeffs][n_layers]; None without a score
    score_name: str | None  # what the scores are, e.g. "p(' cold') at the first new token"
    baseline_text: str  # the unsteered continuation
    baseline_score: float | None
    vector_norms: tuple[float, ...]  # [n_layers]: each layer's vector's mean norm per position

    def relative_norms(self, resid_norms: Sequence[float]) -> list[list[float]]:
        """``[n_coeffs][n_layers]``: ``|coefficient| x ‖v‖ / ‖residual‖`` at each cell.

        ``resid_norms``: the typical residual norm at every layer of the model (``[n_layers]``
        of the model, indexed by layer; :func:`core.steering_vectors.resid_norms`).
        """
        return [
            [relative_norm(c, v, resid_norms[layer]) for layer, v in zip(self.layers, self.vector_norms)]
            for c in self.coeffs
        ]


def keyword_hit_rate(text: str, keywords: Sequence[str]) -> float:
    """Fraction of ``keywords`` that occur in ``text`` as whole words (case-insensitive)."""
    if not keywords:
        return 0.0
    hits = sum(bool(re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE)) for k in keywords)
    return hits / len(keywords)


def sweep(
    lm: LoadedModel,
    prompt: str,
    vectors: Mapping[int, Any],
    coeffs: Sequence[float],
    mode: Mode,
    max_new_tokens: int = 20,
    target_word: str | None = None,
    keywords: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Greedy steered continuations of ``prompt`` for every (layer, coefficient).

    ``vectors``: ``{layer: vector}``, the layers of the grid in order, each with the vector
    added at that layer (``[d_model]`` for ``"last"``, ``[n_pos, d_model]`` for ``"prompt"``,
    or a :class:`core.vectors.Vector`). The score is ``p(target_word's first token, with a
    leading space)`` at the first generated step if ``target_word``, else the keyword hit rate
    if ``keywords``, else there is none. Every input, the whole grid's size included, is
    checked before anything runs.
    """
    progress = progress or no_progress
    mode = checks.check_mode(mode)
    prompt = checks.check_text(prompt, "prompt")
    max_new_tokens = checks.check_max_new_tokens(max_new_tokens)
    vectors = dict(vectors or {})
    layers = [checks.check_layer(layer, lm.arch.n_layers) for layer in vectors]
    coeffs = [checks.check_coeff(c) for c in (coeffs or [])]
    checks.check_sweep_grid(layers, coeffs)
    values = [checks.check_vector(lm, vectors[key], mode) for key in vectors]  # [n_pos, d_model] each
    target_id: int | None = None
    score_name: str | None = None
    if target_word is not None and target_word.strip():
        target = " " + target_word.strip()
        target_id = int(first_token_ids(lm, [target])[0])
        score_name = f"p({lm.tokenizer.decode([target_id])!r}) at the first new token"
    keywords = [k.strip() for k in (keywords or []) if k and k.strip()]
    if target_id is None and keywords:
        score_name = "keyword hit rate"

    def score(text: str, logits: torch.Tensor) -> float | None:
        if target_id is not None:
            return float(torch.softmax(logits.float(), -1)[target_id])
        if keywords:
            return keyword_hit_rate(text, keywords)
        return None

    texts: list[list[str]] = [[""] * len(layers) for _ in coeffs]
    scores: list[list[float | None]] = [[None] * len(layers) for _ in coeffs]
    baseline_text, baseline_score = "", None
    for li, (layer, layer_values) in enumerate(zip(layers, values)):
        row_coeffs = list(coeffs) + ([0.0] if li == 0 else [])  # the last row is the baseline

        def step_progress(f: float, m: str, li: int = li, layer: int = layer) -> None:
            progress((li + f) / len(layers), f"layer {layer} ({li + 1}/{len(layers)}): {m}")

        row_texts, logits = generate_coeff_rows(
            lm, prompt, row_coeffs, layer_values, layer, mode, max_new_tokens, step_progress
        )
        for ci in range(len(coeffs)):
            texts[ci][li] = row_texts[ci]
            scores[ci][li] = score(row_texts[ci], logits[ci])
        if li == 0:
            baseline_text, baseline_score = row_texts[-1], score(row_texts[-1], logits[-1])
    return SweepResult(
        prompt=prompt,
        mode=mode,
        layers=tuple(layers),
        coeffs=tuple(coeffs),
        texts=tuple(tuple(row) for row in texts),
        scores=tuple(tuple(row) for row in scores) if score_name else None,  # type: ignore[arg-type]
        score_name=score_name,
        baseline_text=baseline_text,
        baseline_score=baseline_score,
        vector_norms=tuple(mean_norm(v) for v in values),
    )
