"""Function-vector heads against induction heads: induction scores and mean-ablation curves.

*Induction heads* (Olsson et al., "In-context Learning and Induction Heads", 2022) complete
``[A][B] ... [A] -> [B]``: at a token that occurred before, they attend to the token that came
*after* its earlier occurrence. On a sequence of random tokens repeated twice (``bos, t_1..t_T,
t_1..t_T``) every token of the second copy has exactly one earlier occurrence, so a head's
*induction score* is its attention from each second-copy token at position ``i`` to position
``i - T + 1``, averaged over the copy and over a few seeded sequences (1 for a perfect
induction head; ``1 / i`` for a head that attends uniformly). The patterns of every layer come
from one forward with eager attention, switched on for that pass only (as in
:mod:`core.attention`).

Yin & Steinhardt, "Which Attention Heads Matter for In-Context Learning?" (2025), find that the
two kinds of heads are largely distinct, and that in-context accuracy falls when the top
*function-vector* heads (largest causal indirect effect, Todd et al. 2023) are ablated, much
more than when the top induction heads are. :func:`ablation_curves` measures this: on clean
in-context prompts, each head of the top-``n`` set (``n = 0..n_max``, cumulative) has its
output at the last token replaced by its mean over the clean build prompts (mean ablation,
the same :class:`core.patching.Edit` as attribution's), and the answer's first token is scored.
Every ``n`` of both orders is one group of one batched :func:`core.patching.last_token_scores`
call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core import limits
from core.attribution import Attribution, head_patch_groups
from core.errors import UserInputError
from core.inference import Progress, encode, first_token_ids, no_progress
from core.models import LoadedModel
from core.patching import Edit, last_token_scores
from core.prompts import PromptSet, PromptSettings, icl_prompts
from core.stats import Accuracy
from core.tasks import Task

Head = tuple[int, int]
FV_HEADS, INDUCTION_HEADS = "fv_heads", "induction_heads"  # the two ablation orders


# --- induction scores ---------------------------------------------------------------------------


def repeated_random_tokens(lm: LoadedModel, n_seqs: int = 4, seq_len: int = 25, seed: int = 0) -> torch.Tensor:
    """``[n_seqs, offset + 2 * seq_len]``: ``seq_len`` distinct random tokens (no special tokens),
    then the same tokens again, each row after the tokenizer's BOS token where it has one
    (``offset`` 1, else 0). Seeded by ``seed`` alone, with a generator of its own."""
    if not (n_seqs >= 1 and 2 <= seq_len <= limits.MAX_PROMPT_TOKENS // 2 - 1):
        raise ValueError(
            f"need n_seqs >= 1 and 2 <= seq_len < {limits.MAX_PROMPT_TOKENS // 2} (got {n_seqs}, {seq_len})"
        )
    special = set(lm.tokenizer.all_special_ids)
    pool = torch.tensor([i for i in range(min(len(lm.tokenizer), lm.arch.d_vocab)) if i not in special])
    g = torch.Generator().manual_seed(seed)
    first = torch.stack([pool[torch.randperm(len(pool), generator=g)[:seq_len]] for _ in range(n_seqs)])
    rows = [first, first]  # [n_seqs, seq_len] twice
    bos = lm.tokenizer.bos_token_id
    if bos is not None:
        rows.insert(0, torch.full((n_seqs, 1), int(bos), dtype=torch.long))
    return torch.cat(rows, dim=1)


def induction_stripe(pattern: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``pattern [..., pos, pos]`` (query, key) of a repeated sequence ending in its two copies
    of ``seq_len`` tokens -> ``[..., seq_len]``: the attention from each second-copy token
    (query ``i``) to the token after its earlier occurrence (key ``i - seq_len + 1``)."""
    stripe = pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)  # queries seq_len-1 .. pos-1
    return stripe[..., -seq_len:]  # the last seq_len queries: the second copy


@dataclass(frozen=True)
class InductionScores:
    scores: torch.Tensor  # [n_layers, n_heads]: mean attention on the induction stripe, 0..1
    n_seqs: int
    seq_len: int
    seed: int
    seconds: float

    def top_heads(self, k: int) -> list[Head]:
        """The ``k`` heads of largest induction score, largest first, as (layer, head)."""
        return _top(self.scores, k)


def induction_scores(
    lm: LoadedModel, n_seqs: int = 4, seq_len: int = 25, seed: int = 0, progress: Progress = no_progress
) -> InductionScores:
    """Every head's induction score on ``n_seqs`` repeated random sequences (one forward)."""
    lm.require_local("Induction scores")  # eager attention is switched on this machine's model
    t0 = time.perf_counter()
    arch = lm.arch
    ids = repeated_random_tokens(lm, n_seqs, seq_len, seed).to(lm.device)  # [n_seqs, pos]
    saved: list = []
    with lm.locked(), torch.no_grad():
        previous = lm.hf.config._attn_implementation
        lm.hf.set_attn_implementation("eager")
        try:
            with lm.trace(input_ids=ids, attention_mask=torch.ones_like(ids)) as tracer:
                for layer in range(arch.n_layers):
                    pattern = arch.attention(lm.nn, layer).output[1]  # [n_seqs, n_heads, pos, pos]
                    # reduced here: n_heads numbers per layer leave the trace, not the patterns
                    saved.append(induction_stripe(pattern.float(), seq_len).mean(-1).mean(0).save())  # [n_heads]
                tracer.stop()  # nothing after the last attention is needed
        finally:
            lm.hf.set_attn_implementation(previous)
    progress(1.0, "induction scores")
    scores = torch.stack([s.cpu() for s in saved])  # [n_layers, n_heads]
    return InductionScores(scores, n_seqs, seq_len, seed, time.perf_counter() - t0)


# --- ablation curves ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationCurves:
    """In-context scores as the top-``n`` heads of each order are mean-ablated at the last token."""

    n: list[int]  # 0..n_max ablated heads
    orders: dict[str, list[Head]]  # order name -> its first n_max heads
    correct: dict[str, torch.Tensor]  # order name -> [n_max + 1, n_prompts] bool: top-1 is the answer
    logprob: dict[str, torch.Tensor]  # order name -> [n_max + 1, n_prompts]: the answer's log-probability
    n_prompts: int

    def accuracy(self, name: str) -> list[Accuracy]:
        """One accuracy per ``n``, each on the same ``n_prompts`` prompts."""
        return [Accuracy(int(c.sum()), self.n_prompts) for c in self.correct[name]]

    def to_json(self) -> dict:
        out: dict = {"n": self.n, "n_prompts": self.n_prompts}
        for name in self.orders:
            accs = self.accuracy(name)
            out[name] = [a.value for a in accs]
            out[f"{name}_ci"] = [a.to_json() for a in accs]
            out[f"{name}_mean_logprob"] = self.logprob[name].mean(-1).tolist()
            out[f"{name}_order"] = [list(h) for h in self.orders[name]]
        return out


def ablation_groups(mean_heads: torch.Tensor, order: Sequence[Head], n_max: int) -> list[list[Edit]]:
    """Group ``n - 1`` (``n = 1..n_max``) mean-ablates the first ``n`` heads of ``order``
    together: each one's last-token slice replaced by its clean mean (``mean_heads
    [n_layers, n_heads, d_head]``)."""
    singles = head_patch_groups(mean_heads, list(order[:n_max]))  # one edit per head
    return [[edit for group in singles[:n] for edit in group] for n in range(1, len(singles) + 1)]


def ablation_curves(
    lm: LoadedModel,
    prompts: PromptSet,
    mean_heads: torch.Tensor,
    orders: dict[str, Sequence[Head]],
    n_max: int = 10,
    progress: Progress = no_progress,
) -> AblationCurves:
    """Mean-ablate the top ``0..n_max`` heads of each order on the clean prompts of ``prompts``
    and score the answer's first token: one batched engine call, the unedited run (``n = 0``)
    shared by every order."""
    if not 0 <= n_max <= min(len(o) for o in orders.values()):
        raise UserInputError(f"Ablate from 0 to {min(len(o) for o in orders.values())} heads (got {n_max}).")
    enc = encode(lm, prompts.clean)
    targets = first_token_ids(lm, prompts.targets)  # [n_prompts]
    groups: list[list[Edit]] = [[]]
    for order in orders.values():
        groups += ablation_groups(mean_heads, order, n_max)
    scores = last_token_scores(lm, enc, targets, groups, progress=progress)  # [1 + n_orders * n_max, n_prompts]
    correct, logprob = {}, {}
    for i, name in enumerate(orders):
        rows = [0] + list(range(1 + i * n_max, 1 + (i + 1) * n_max))
        correct[name] = scores.top1[rows] == targets
        logprob[name] = scores.logprob[rows]
    return AblationCurves(
        n=list(range(n_max + 1)),
        orders={name: list(order[:n_max]) for name, order in orders.items()},
        correct=correct,
        logprob=logprob,
        n_prompts=len(prompts),
    )


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadsComparison:
    induction: InductionScores
    cie: torch.Tensor  # [n_layers, n_heads]: the attribution's causal indirect effect
    metric: str
    ablation: AblationCurves
    rank_correlation: float  # Spearman's rho of the two scores over all heads
    seconds: float

    def top_overlap(self, k: int = 10) -> list[Head]:
        """Heads in both the top ``k`` by indirect effect and the top ``k`` by induction score."""
        induction = set(self.induction.top_heads(k))
        return [h for h in _top(self.cie, k) if h in induction]

    def to_json(self) -> dict:
        k = len(self.ablation.n) - 1
        return {
            "induction": self.induction.scores.tolist(),
            "induction_settings": {
                "n_seqs": self.induction.n_seqs,
                "seq_len": self.induction.seq_len,
                "seed": self.induction.seed,
            },
            "cie": self.cie.tolist(),
            "metric": self.metric,
            "top_fv_heads": [list(h) for h in _top(self.cie, 10)],
            "top_induction_heads": [list(h) for h in self.induction.top_heads(10)],
            "top_overlap": [list(h) for h in self.top_overlap(max(k, 1))],
            "rank_correlation": self.rank_correlation,
            "ablation": self.ablation.to_json(),
            "seconds": self.seconds,
        }


def compare_heads(
    lm: LoadedModel,
    prompts: PromptSet,
    mean_heads: torch.Tensor,
    attribution: Attribution,
    induction: InductionScores,
    n_max: int = 10,
    progress: Progress = no_progress,
) -> HeadsComparison:
    """Both scores, their rank correlation, and the ablation curves of both orders on ``prompts``."""
    t0 = time.perf_counter()
    if attribution.cie.isnan().any():
        raise UserInputError("The comparison needs the indirect effect of every head: run attribution on all heads.")
    total = lm.arch.n_layers * lm.arch.n_heads
    orders = {FV_HEADS: attribution.top_heads(total), INDUCTION_HEADS: induction.top_heads(total)}
    curves = ablation_curves(lm, prompts, mean_heads, orders, n_max, progress)
    return HeadsComparison(
        induction=induction,
        cie=attribution.cie,
        metric=attribution.metric,
        ablation=curves,
        rank_correlation=spearman(attribution.cie.flatten(), induction.scores.flatten()),
        seconds=time.perf_counter() - t0,
    )


def ablation_prompts(task: Task, settings: PromptSettings, n_eval: int = 50) -> PromptSet:
    """Clean prompts for the ablation: at most ``n_eval`` held-out (test split) queries, demos
    from the train split, so the heads' means (from the build prompts) never saw the queries.
    ``n_eval`` is checked by :func:`core.prompts.build_prompts`."""
    return icl_prompts(task, settings, split="test", n_prompts=n_eval)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (Pearson's r of their ranks)."""
    ra, rb = (x.argsort().argsort().double() for x in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def _top(scores: torch.Tensor, k: int) -> list[Head]:
    order = torch.argsort(scores.flatten(), descending=True)[:k]
    layers, heads = torch.unravel_index(order, scores.shape)
    return list(zip(layers.tolist(), heads.tolist()))
