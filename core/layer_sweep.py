"""Accuracy with a vector added at each of several layers: one batched, cached-prefix pass.

The measurement behind every layer curve (h-vectors, function vectors, the layer choice): the
zero-shot prompts run once without an edit and once per ``(layer, vector)``, the vector added to
the residual stream after block ``layer`` at the last token (:mod:`core.patching`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.inference import Progress, encode, first_token_ids, no_progress
from core.models import LoadedModel
from core.patching import Edit, last_token_scores


def accuracy_sweep(
    lm: LoadedModel,
    prompts: Sequence[str],
    targets: Sequence[str],
    vectors: Sequence[tuple[int, torch.Tensor]],
    coeff: float = 1.0,
    progress: Progress = no_progress,
) -> tuple[float, list[float]]:
    """Top-1 accuracy without edits, and with each ``(layer, vector)`` added at the last token."""
    acc, _ = scores_sweep(lm, prompts, targets, vectors, coeff, progress)
    return acc[0], acc[1:]


def scores_sweep(
    lm: LoadedModel,
    prompts: Sequence[str],
    targets: Sequence[str],
    vectors: Sequence[tuple[int, torch.Tensor]],
    coeff: float,
    progress: Progress,
) -> tuple[list[float], list[float]]:
    """``(accuracy, mean log-prob of the target)`` per group: none first, then each vector."""
    enc = encode(lm, prompts)
    tgt = first_token_ids(lm, targets)
    groups = [[]] + [[Edit(layer=l, site="resid", value=v * coeff, add=True)] for l, v in vectors]
    scores = last_token_scores(lm, enc, tgt, groups, progress=progress)
    return (scores.top1 == tgt[None]).float().mean(1).tolist(), scores.logprob.mean(1).tolist()
