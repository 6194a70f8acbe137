"""Function vectors and h-vectors: build, evaluate across layers, decode into tokens.

Todd et al. (2023): a *function vector* is the sum, over a few attention heads with a large
causal indirect effect, of each head's mean output written into the residual stream
(``W_O[:, head] @ mean_slice``, plus the out-projection bias once per head where there is
one). Added to the residual stream at a middle layer (at the last token) of a zero-shot
prompt, it makes the model perform the task. The *h-vector* (section 2.1) is the mean
residual stream itself, at each layer; its layer sweep shows where the task is represented.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.attribution import Attribution, CleanStats, clean_stats, indirect_effects
from core.checks import check_coeff, check_heads, check_layer
from core.errors import UserInputError
from core.generation_scoring import answer_stops, is_case_task, score_generations
from core.inference import Progress, encode, first_token_ids, forward_kwargs, no_progress
from core.layer_choice import choose_layer, layer_choice_prompts
from core.layer_sweep import accuracy_sweep
from core.models import LoadedModel
from core.patching import Edit, last_token_scores
from core.prompts import PromptSet, PromptSettings, held_out_prompts, icl_prompts
from core.results import FVReport, HVectorSweep
from core.tasks import Task
from core.vectors import Vector


def parse_head_list(text: str) -> list[tuple[int, int]]:
    """``"20.5, 14.1"`` -> ``[(20, 5), (14, 1)]``."""
    heads = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            l, h = part.split(".")
            heads.append((int(l), int(h)))
        except ValueError:
            raise UserInputError(f"'{part}' is not a head: write layer.head, e.g. 20.5") from None
    return heads


def _one_token_batch(lm: LoadedModel, n_rows: int) -> dict[str, torch.Tensor]:
    """Inputs of a forward whose activations are overwritten: one token per row."""
    tok = lm.tokenizer.bos_token_id
    tok = tok if tok is not None else (lm.tokenizer.eos_token_id or 0)
    ids = torch.full((n_rows, 1), int(tok), dtype=torch.long)
    return {"input_ids": ids.to(lm.device), "attention_mask": torch.ones_like(ids).to(lm.device)}


def function_vector_values(lm: LoadedModel, mean_heads: torch.Tensor, heads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``[d_model]``: sum of the chosen heads' mean contributions to the residual stream.

    A head's contribution is the out-projection applied to its mean output with every other
    head's slice zero (its write plus the projection's bias, as in Todd et al.). Computed in
    one traced forward of one-token rows, row ``i`` carrying head ``i``'s input to the
    out-projection of its layer, so it runs wherever the model does (NDIF included): no
    weights are read on this machine.
    """
    heads = check_heads(lm, heads)
    arch, d = lm.arch, lm.arch.d_head
    layers = sorted({l for l, _ in heads})
    z = {l: torch.zeros(len(heads), 1, arch.n_heads * d) for l in layers}  # [rows, pos, n_heads * d_head]
    for i, (l, h) in enumerate(heads):
        z[l][i, 0, h * d : (h + 1) * d] = mean_heads[l, h].float()
    saved: dict[int, Any] = {}
    with lm.locked(), torch.no_grad():
        with lm.trace(**_one_token_batch(lm, len(heads)), **forward_kwargs(lm)):
            for l in layers:  # execution order
                proj = arch.out_proj(lm.nn, l)
                proj.input = z[l].to(lm.device, lm.dtype)
                saved[l] = proj.output[:, -1].save()  # [rows, d_model]
    return sum(saved[l][i].float().cpu() for i, (l, _) in enumerate(heads))


def decode_vector(lm: LoadedModel, values: torch.Tensor, k: int = 15) -> list[tuple[str, float]]:
    """Tokens a vector promotes: final norm then unembedding, top-k logits.

    ``values``: ``[d_model]``, or ``[n_pos, d_model]`` (averaged over positions). One traced
    forward of a one-token input whose final-norm input is replaced by the vector, so it runs
    wherever the model does (NDIF included).
    """
    v = values.float()
    if v.dim() == 2:
        v = v.mean(0)
    if v.shape != (lm.arch.d_model,):
        raise UserInputError(
            f"A vector of width {v.shape[-1]} cannot be decoded by a model of width {lm.arch.d_model}."
        )
    with lm.locked(), torch.no_grad():
        with lm.trace(**_one_token_batch(lm, 1), **forward_kwargs(lm)):
            lm.arch.final_norm(lm.nn).input = v.to(lm.device, lm.dtype)[None, None]  # [1, 1, d_model]
            logits = lm.arch.unembed(lm.nn).output[0, -1].save()  # [d_vocab]
    vals, ids = logits.float().cpu().topk(k)
    return [(lm.tokenizer.decode([int(i)]), float(x)) for x, i in zip(vals, ids)]


@dataclass
class Workbench:
    """Everything computed from (model, task, prompt settings): the build prompts, their clean
    statistics and the attribution grid. Built once and reused by every later step."""

    task: Task
    settings: PromptSettings
    prompts: PromptSet
    stats: CleanStats
    attribution: Attribution | None = None


def build_workbench(
    lm: LoadedModel, task: Task, settings: PromptSettings, progress: Progress = no_progress
) -> Workbench:
    prompts = icl_prompts(task, settings)  # train-split queries, train-split demos
    stats = clean_stats(lm, prompts, progress=progress)
    return Workbench(task=task, settings=settings, prompts=prompts, stats=stats)


def make_vector(
    lm: LoadedModel,
    wb: Workbench,
    heads: Sequence[tuple[int, int]],
    layer: int,
    name: str = "fv",
    values: torch.Tensor | None = None,
) -> Vector:
    """The function vector of ``heads`` for ``layer``, with its provenance. ``values``
    (``[d_model]``): already computed by :func:`function_vector_values`; else computed here
    (one traced forward)."""
    heads = check_heads(lm, heads)
    return Vector(
        values=function_vector_values(lm, wb.stats.mean_heads, heads) if values is None else values,
        model_id=lm.model_id,
        layer=layer,
        method="function_vector",
        name=name,
        provenance={
            "task": wb.task.name,
            "heads": [list(h) for h in heads],
            "settings": wb.settings.to_dict(),
            "n_prompts": len(wb.prompts),
            "metric": wb.attribution.metric if wb.attribution else None,
        },
    )


def make_hvector(lm: LoadedModel, wb: Workbench, layer: int, name: str = "hvector") -> Vector:
    """The h-vector of ``layer`` (mean last-token block output over the build prompts)."""
    return Vector(
        values=wb.stats.hvector[layer].clone(),
        model_id=lm.model_id,
        layer=layer,
        method="h_vector",  # the method's name in saved files
        name=name,
        provenance={"task": wb.task.name, "settings": wb.settings.to_dict(), "n_prompts": len(wb.prompts)},
    )


def hvector_sweep(lm: LoadedModel, wb: Workbench, n_eval: int = 50, progress: Progress = no_progress) -> HVectorSweep:
    """The h-vector of every layer added (coefficient 1) to at most ``n_eval`` held-out
    zero-shot queries: one accuracy per layer, plus the unedited zero-shot and in-context
    accuracy on the same queries."""
    splits, test = held_out_prompts(wb.task, wb.settings, n_eval)
    per_layer = [(l, wb.stats.hvector[l]) for l in range(lm.arch.n_layers)]
    base, by_layer = accuracy_sweep(lm, test.zero_shot, test.targets, per_layer, 1.0, progress=progress)
    icl, _ = accuracy_sweep(lm, test.clean, test.targets, [])
    return HVectorSweep(
        zero_shot_baseline=base, by_layer=tuple(by_layer), icl_accuracy=icl, n_eval=len(test), overlap=splits.overlap
    )


def evaluate(
    lm: LoadedModel,
    wb: Workbench,
    heads: Sequence[tuple[int, int]],
    layer: int | str = "auto",
    n_eval: int = 50,
    coeff: float = 1.0,
    max_curve_heads: int | None = None,
    progress: Progress = no_progress,
) -> FVReport:
    """The function-vector report: layer sweep, chosen layer, shuffled prompts, heads curve,
    h-vector sweep, decoding, and the vector itself. Evaluation queries come from the test
    split; with ``layer="auto"`` the layer is chosen on valid and train queries, never test
    ones (:func:`choose_layer`). Besides first-token accuracy, whole answers are generated
    greedily without and with the vector and matched (:mod:`core.generation_scoring`)."""
    t0 = time.perf_counter()
    heads = check_heads(lm, heads)
    coeff = check_coeff(coeff)
    n_layers = lm.arch.n_layers
    if layer != "auto":
        layer = check_layer(int(layer), n_layers)
    splits, test = held_out_prompts(wb.task, wb.settings, n_eval)
    values = function_vector_values(lm, wb.stats.mean_heads, heads)  # [d_model]
    per_layer = [(l, values) for l in range(n_layers)]

    def step(lo: float, hi: float) -> Progress:
        return lambda f, m: progress(lo + (hi - lo) * f, m)

    valid_by_layer: list[float] = []
    n_valid = 0
    if layer == "auto":
        layer, valid_by_layer = choose_layer(lm, wb, values, n_eval, coeff, step(0, 0.2))
        n_valid = len(layer_choice_prompts(wb.task, wb.settings, n_eval))
    zs_base, zs_by_layer = accuracy_sweep(lm, test.zero_shot, test.targets, per_layer, coeff, step(0.2, 0.45))
    _, hv_by_layer = accuracy_sweep(
        lm, test.zero_shot, test.targets, [(l, wb.stats.hvector[l]) for l in range(n_layers)], 1.0, step(0.45, 0.65)
    )
    sh_base, (sh_fv,) = accuracy_sweep(lm, test.corrupted, test.targets, [(layer, values)], coeff, step(0.65, 0.8))
    # in-context accuracy on the test queries, and the heads curve at the chosen layer
    order = wb.attribution.top_heads(max_curve_heads or len(heads)) if wb.attribution else heads
    curve_vectors = [
        (layer, function_vector_values(lm, wb.stats.mean_heads, order[:k])) for k in range(1, len(order) + 1)
    ]
    _, curve = accuracy_sweep(lm, test.zero_shot, test.targets, curve_vectors, coeff, step(0.8, 0.85))
    icl_acc, _ = accuracy_sweep(lm, test.clean, test.targets, [], 1.0, step(0.85, 0.9))
    # whole answers, greedily generated, without and with the vector at the chosen layer
    gen = score_generations(
        lm,
        test.zero_shot,
        test.targets,
        values * coeff,
        layer,
        case_sensitive=is_case_task(wb.task),
        stops=answer_stops(wb.settings.template, wb.settings.separator),
        progress=step(0.9, 1.0),
    )
    examples = fv_examples(lm, test, layer, values * coeff)
    for row, without, with_fv, ok in zip(examples, gen.without, gen.with_vector, gen.correct_with):
        row.update({"generated without": without, "generated with": with_fv, "generation correct with": ok})
    best = int(torch.tensor(hv_by_layer).argmax())
    return FVReport(
        heads=heads,
        layer=layer,
        layer_choice="auto (chosen on valid and train queries)" if valid_by_layer else "given",
        icl_accuracy=icl_acc,
        zero_shot_baseline=zs_base,
        zero_shot_by_layer=zs_by_layer,
        zero_shot_with_fv=zs_by_layer[layer],
        shuffled_baseline=sh_base,
        shuffled_with_fv=sh_fv,
        hvector_by_layer=hv_by_layer,
        hvector_best_layer=best,
        hvector_best_accuracy=hv_by_layer[best],
        valid_by_layer=valid_by_layer,
        heads_curve=curve,
        curve_heads=[(int(l), int(h)) for l, h in order],
        decoded_tokens=decode_vector(lm, values),
        n_eval=len(test),
        coeff=coeff,
        overlap=splits.overlap,
        vector=make_vector(lm, wb, heads, layer, values=values),
        examples=examples,
        seconds=time.perf_counter() - t0,
        n_valid=n_valid,
        zero_shot_generation_accuracy=gen.accuracy_without.value,
        zero_shot_with_fv_generation_accuracy=gen.accuracy_with.value,
        generation_max_new_tokens=gen.max_new_tokens,
        generation_case_sensitive=gen.case_sensitive,
    )


def fv_examples(lm: LoadedModel, prompts: PromptSet, layer: int, vector: torch.Tensor, n: int = 12) -> list[dict]:
    """Zero-shot predictions with and without the vector, for a table."""
    enc = encode(lm, prompts.zero_shot[:n])
    tgt = first_token_ids(lm, prompts.targets[:n])
    scores = last_token_scores(lm, enc, tgt, [[], [Edit(layer, "resid", vector, add=True)]])
    rows = []
    for i in range(len(enc)):
        rows.append(
            {
                "query": prompts.queries[i].input,
                "target": prompts.targets[i].strip(),
                "without": lm.tokenizer.decode([int(scores.top1[0, i])]),
                "with vector": lm.tokenizer.decode([int(scores.top1[1, i])]),
                "correct with": bool(scores.top1[1, i] == tgt[i]),
            }
        )
    return rows


def run_attribution(
    lm: LoadedModel, wb: Workbench, metric: str = "prob", method: str = "fast", progress: Progress = no_progress
) -> Attribution:
    wb.attribution = indirect_effects(
        lm, wb.prompts, wb.stats.mean_heads, metric=metric, method=method, progress=progress
    )
    return wb.attribution


__all__ = [
    "FVReport",
    "HVectorSweep",
    "Workbench",
    "build_workbench",
    "choose_layer",
    "clean_stats",
    "decode_vector",
    "evaluate",
    "function_vector_values",
    "hvector_sweep",
    "make_hvector",
    "make_vector",
    "parse_head_list",
    "run_attribution",
]
