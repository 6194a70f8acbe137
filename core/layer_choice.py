"""Which layer a function vector is added at, chosen without looking at the test queries.

Todd et al. (2023) pick the layer on held-out validation queries. Here the queries come from the
valid and then the train split (never test), and the rule prefers, among the layers tied with
the best one on accuracy, the one that raises the answer's log-probability most (see
:func:`choose_layer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from core import limits
from core.inference import Progress, no_progress
from core.layer_sweep import scores_sweep
from core.models import LoadedModel
from core.prompts import PromptSet, PromptSettings, build_prompts, split_task
from core.stats import Accuracy

if TYPE_CHECKING:
    from core.fv import Workbench
    from core.tasks import Task


MIN_LAYER_QUERIES = 100  # the layer is chosen on at least this many queries where the task has them


def layer_choice_prompts(task: Task, settings: PromptSettings, n_eval: int = 50) -> PromptSet:
    """The queries the layer is chosen on: the valid split, then the train split, never the test
    split; at most ``max(n_eval, MIN_LAYER_QUERIES)``. About ten validation queries alone chose
    layers 20 points worse than the best one on test queries (capitalize, 9 vs 16); the train
    queries are disjoint from the test ones (demos come from train and never show the query)."""
    splits = split_task(task, settings.seed)
    pool = list(dict.fromkeys(splits.valid + splits.train))  # the whole task once when splits overlap
    n = min(len(pool), max(n_eval, MIN_LAYER_QUERIES), limits.MAX_N_PROMPTS)
    return build_prompts(pool, splits.train, settings, n_prompts=n)


def choose_layer(
    lm: LoadedModel,
    wb: Workbench,
    values: torch.Tensor,
    n_eval: int = 50,
    coeff: float = 1.0,
    progress: Progress = no_progress,
) -> tuple[int, list[float]]:
    """``(layer, accuracy per layer)``: where adding ``values`` (``[d_model]``) at the last token
    of the zero-shot layer-choice queries (:func:`layer_choice_prompts`) works best; the choice
    of :func:`evaluate` with ``layer="auto"``.

    The rule: among the layers whose accuracy lies inside the 95% Wilson interval of the best
    layer's (statistically tied with it on these queries), the one that raises the answer's mean
    first-token log-probability most. Accuracy on a few dozen queries moves by several points
    from layer to layer by chance; the log-probability uses every query's evidence, right or
    wrong, and is a steadier signal (on the 13 built-in tasks the chosen layer's test accuracy
    is within 0.02 of the best test layer's on average: ``make bench``).
    """
    n_layers = lm.arch.n_layers
    valid = layer_choice_prompts(wb.task, wb.settings, n_eval)
    per_layer = [(l, values) for l in range(n_layers)]
    acc, logprob = scores_sweep(lm, valid.zero_shot, valid.targets, per_layer, coeff, progress)
    by_layer = acc[1:]
    n = len(valid)
    correct = [round(a * n) for a in by_layer]  # right answers per layer
    low, _ = Accuracy(max(correct), n).interval
    # the best layers always count (the bound is a float: with 0 right it is about 1e-17, not 0)
    tied = [l for l in range(n_layers) if correct[l] == max(correct) or correct[l] / n >= low]
    return max(tied, key=lambda l: (logprob[1 + l], by_layer[l])), by_layer
