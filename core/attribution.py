"""Mean head activations and the causal indirect effect (CIE) of every attention head.

Todd et al., "Function Vectors in Large Language Models" (2023), section 2.2: average each
head's output (its slice of the out-projection input, ``[d_head]``) at the last token over
clean in-context prompts. Then, on corrupted prompts whose demo labels are shuffled, replace
one head's slice at the last token with that mean and measure how much the probability of
the correct answer's first token rises. Heads with a large effect carry the task.

Two paths give the same numbers: ``fast`` reuses the corrupted prompts' prefix cache and
batches a layer's heads into one pass that skips the earlier blocks (see
:func:`core.patching.last_token_scores`); ``reference`` runs one whole traced forward per
head.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from einops import rearrange

from core.inference import Progress, encode, first_token_ids, no_progress, run_forward
from core.models import LoadedModel
from core.patching import Edit, last_token_scores
from core.prompts import PromptSet
from core.results import top_heads

METRICS = ("prob", "logprob")
METHODS = ("fast", "reference")


@dataclass
class CleanStats:
    """Last-token statistics of the clean in-context prompts."""

    mean_heads: torch.Tensor  # [n_layers, n_heads, d_head]
    hvector: torch.Tensor  # [n_layers, d_model]: mean block output (the paper's h-vector)
    logits: torch.Tensor  # [n_prompts, d_vocab]
    icl_accuracy: float
    n_prompts: int


def clean_stats(lm: LoadedModel, prompts: PromptSet, progress: Progress = no_progress) -> CleanStats:
    """One traced pass over the clean prompts: mean head slices, the h-vector, and accuracy."""
    arch = lm.arch
    fw = run_forward(lm, encode(lm, prompts.clean), save_resid=True, save_heads=True, progress=progress)
    # [n_layers, n_prompts, n_heads * d_head] -> one slice per head
    heads = rearrange(fw.heads, "layer prompt (head d_head) -> layer prompt head d_head", head=arch.n_heads)
    targets = first_token_ids(lm, prompts.targets)
    acc = (fw.logits.argmax(-1) == targets).float().mean().item()
    return CleanStats(
        mean_heads=heads.mean(1),
        hvector=fw.resid.mean(1),
        logits=fw.logits,
        icl_accuracy=acc,
        n_prompts=len(prompts),
    )


@dataclass
class Attribution:
    cie: torch.Tensor  # [n_layers, n_heads]: effect averaged over prompts
    per_prompt: torch.Tensor  # [n_layers, n_heads, n_prompts]
    baseline: torch.Tensor  # [n_prompts]: metric on the corrupted prompts before any patch
    metric: str
    method: str
    seconds: float
    extra: dict = field(default_factory=dict)

    def top_heads(self, k: int) -> list[tuple[int, int]]:
        """The ``k`` heads of largest effect, largest first, as (layer, head)."""
        return top_heads(self.cie, k)


def head_patch_groups(mean_heads: torch.Tensor, heads: list[tuple[int, int]]) -> list[list[Edit]]:
    """One group per head: replace its last-token slice with the clean mean."""
    return [[Edit(layer=l, site="head", head=h, value=mean_heads[l, h])] for l, h in heads]


def indirect_effects(
    lm: LoadedModel,
    prompts: PromptSet,
    mean_heads: torch.Tensor,
    metric: str = "prob",
    method: str = "fast",
    heads: list[tuple[int, int]] | None = None,
    progress: Progress = no_progress,
) -> Attribution:
    """The CIE of each head (all heads unless ``heads`` is given) on the corrupted prompts."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    arch = lm.arch
    if heads is None:
        heads = [(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads)]
    t0 = time.perf_counter()
    enc = encode(lm, prompts.corrupted)
    targets = first_token_ids(lm, prompts.targets)
    groups = [[]] + head_patch_groups(mean_heads, heads)
    if method == "fast":
        scores = last_token_scores(lm, enc, targets, groups, use_cache=True, progress=progress)
    else:
        scores = last_token_scores(lm, enc, targets, groups, use_cache=False, max_groups_per_pass=1, progress=progress)
    values = scores.prob if metric == "prob" else scores.logprob
    effect = values[1:] - values[0]  # [n_heads_listed, n_prompts]
    per_prompt = torch.full((arch.n_layers, arch.n_heads, len(prompts)), float("nan"))
    for i, (l, h) in enumerate(heads):
        per_prompt[l, h] = effect[i]
    return Attribution(
        cie=per_prompt.mean(-1),
        per_prompt=per_prompt,
        baseline=values[0],
        metric=metric,
        method=method,
        seconds=time.perf_counter() - t0,
    )
