"""Tasks compared on one model: shared heads, similar vectors, and transfer.

Todd et al., "Function Vectors in Large Language Models" (2023): averaging the causal indirect
effect (CIE) grid over many tasks shows a small set of heads that matter for most of them
(section 3.1, their figure 3); a task's function vector (FV) is the sum of the mean outputs
of its top heads. For several tasks on the same model and prompt settings this module gives

- ``mean_cie``: the CIE grid of each task (its own attribution), averaged over the tasks;
- ``top_head_overlap``: for each pair of tasks, the Jaccard index of their top-k head sets,
  ``|A & B| / |A | B|`` (1 on the diagonal, 0 when they share no head);
- ``fv_cosine``: the cosine similarity of their function vectors (top-k heads each);
- ``transfer``: the FV of task A (row) added at the last token of task B's (column) held-out
  zero-shot queries, scored on B's answers (top-1 of the first token). The diagonal is each
  task's own FV, the number of the Function vector page; ``zero_shot`` is B's accuracy with
  no vector. Each source adds its FV at one layer: with ``layer="auto"`` (the default) the
  source's best layer on its own validation queries (:func:`core.layer_choice.choose_layer`, as the
  Function vector page chooses), otherwise the given layer for every source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core import fv
from core.checks import check_layer, check_n_heads, check_task_names
from core.errors import UserInputError
from core.inference import Progress, no_progress
from core.layer_choice import choose_layer
from core.layer_sweep import accuracy_sweep
from core.models import LoadedModel
from core.prompts import PromptSet, PromptSettings, build_prompts, split_task
from core.stats import Accuracy
from core.tasks import Task
from core.vectors import cosine_matrix

OVERLAP_MEASURE = "jaccard"  # |A & B| / |A | B| of two tasks' top-k head sets

# (task, progress) -> that task's workbench with its attribution (core.fv.Workbench)
WorkbenchFn = Callable[[Task, Progress], fv.Workbench]


def span(progress: Progress, lo: float, hi: float, prefix: str = "") -> Progress:
    """``progress`` for one stage: fractions ``0..1`` of the stage map to ``lo..hi`` overall."""
    return lambda f, m: progress(lo + (hi - lo) * f, f"{prefix}{m}")


def attributed_workbench(
    lm: LoadedModel, task: Task, settings: PromptSettings, metric: str = "prob", progress: Progress = no_progress
) -> fv.Workbench:
    """The workbench of ``task`` (clean statistics) with every head's CIE on its corrupted prompts."""
    wb = fv.build_workbench(lm, task, settings, progress=span(progress, 0.0, 0.15))
    fv.run_attribution(lm, wb, metric=metric, progress=span(progress, 0.15, 1.0))
    return wb


def jaccard(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> float:
    """``|A & B| / |A | B|`` of two head sets (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def held_out_prompts(task: Task, settings: PromptSettings, n_eval: int) -> PromptSet:
    """At most ``n_eval`` test-split queries with train-split demos: the queries core.fv.evaluate scores."""
    splits = split_task(task, settings.seed)
    return build_prompts(splits.test, splits.train, settings, n_prompts=min(n_eval, len(splits.test)))


@dataclass(frozen=True)
class Comparison:
    """Several tasks on one model and prompt settings (see the module docstring).

    Matrices are ``[n_tasks, n_tasks]`` in the order of ``tasks``; ``transfer[a, b]`` is the
    accuracy on task ``b``'s queries with task ``a``'s function vector.
    """

    tasks: tuple[str, ...]
    settings: dict
    metric: str
    top_k: int
    layer_choice: str  # "auto" (each source's best validation layer) or "fixed"
    layers: tuple[int, ...]  # [n_tasks]: the layer each source's FV is added at
    cie: torch.Tensor  # [n_tasks, n_layers, n_heads]
    mean_cie: torch.Tensor  # [n_layers, n_heads]
    top_heads: tuple[tuple[tuple[int, int], ...], ...]  # per task, largest effect first
    top_head_overlap: torch.Tensor  # [n_tasks, n_tasks]: Jaccard index of top-k head sets
    fv_cosine: torch.Tensor  # [n_tasks, n_tasks]
    transfer: torch.Tensor  # [n_tasks (source FV), n_tasks (target queries)]
    zero_shot: torch.Tensor  # [n_tasks]: each target's accuracy without a vector
    n_eval: tuple[int, ...]  # [n_tasks]: held-out queries per target
    icl_accuracy: tuple[float, ...]  # [n_tasks]: in-context accuracy on the build prompts
    overlap: tuple[bool, ...]  # per task: too small to split, test queries overlap the build queries
    seconds: float = 0.0

    def mean_top_heads(self, k: int) -> list[tuple[int, int]]:
        """The ``k`` heads of largest mean effect over the tasks, largest first, as (layer, head)."""
        order = torch.argsort(self.mean_cie.flatten(), descending=True)[:k]
        layers, heads = torch.unravel_index(order, self.mean_cie.shape)
        return list(zip(layers.tolist(), heads.tolist()))

    def transfer_accuracy(self, source: int, target: int) -> Accuracy:
        return Accuracy.of(float(self.transfer[source, target]), self.n_eval[target])

    def zero_shot_accuracy(self, target: int) -> Accuracy:
        return Accuracy.of(float(self.zero_shot[target]), self.n_eval[target])

    def to_json(self) -> dict[str, Any]:
        n = len(self.tasks)
        return {
            "tasks": list(self.tasks),
            "settings": dict(self.settings),
            "metric": self.metric,
            "top_k": self.top_k,
            "overlap_measure": OVERLAP_MEASURE,
            "layer_choice": self.layer_choice,
            "layers": list(self.layers),
            "mean_cie": self.mean_cie.tolist(),
            "cie": {t: self.cie[i].tolist() for i, t in enumerate(self.tasks)},
            "top_heads": {t: [list(h) for h in self.top_heads[i]] for i, t in enumerate(self.tasks)},
            "top_head_overlap": self.top_head_overlap.tolist(),
            "fv_cosine": self.fv_cosine.tolist(),
            "transfer": self.transfer.tolist(),
            "transfer_ci": [[self.transfer_accuracy(a, b).to_json() for b in range(n)] for a in range(n)],
            "zero_shot": self.zero_shot.tolist(),
            "zero_shot_ci": [self.zero_shot_accuracy(b).to_json() for b in range(n)],
            "n_eval": list(self.n_eval),
            "icl_accuracy": list(self.icl_accuracy),
            "overlap": list(self.overlap),
            "seconds": self.seconds,
        }


def compare_tasks(
    lm: LoadedModel,
    tasks: Sequence[Task],
    settings: PromptSettings,
    top_k: int = 10,
    layer: int | str = "auto",
    n_eval: int = 50,
    metric: str = "prob",
    progress: Progress = no_progress,
    workbench: WorkbenchFn | None = None,
) -> Comparison:
    """Compare ``tasks`` (2 to ``limits.MAX_COMPARE_TASKS``, distinct names) on ``lm``.

    Stages, one ``progress`` over all: each task's workbench and attribution (most of the
    time: ``workbench``, by default :func:`attributed_workbench`; the dashboard passes its
    cached one), each source's layer (``layer="auto"``), then the transfer sweeps, one batched
    pass per target with every source's vector as a group.
    """
    t0 = time.perf_counter()
    names = check_task_names([t.name for t in tasks])
    top_k = check_n_heads(top_k, lm)
    if layer != "auto":
        if isinstance(layer, str):
            raise UserInputError(f"The layer must be 'auto' or a layer number (got '{layer}').")
        layer = check_layer(layer, lm.arch.n_layers)
    if not 1 <= n_eval <= 1000:
        raise UserInputError(f"The number of test queries must be from 1 to 1000 (got {n_eval}).")
    if workbench is None:

        def workbench(task: Task, p: Progress) -> fv.Workbench:
            return attributed_workbench(lm, task, settings, metric, p)

    n = len(tasks)
    wbs: list[fv.Workbench] = []
    for i, task in enumerate(tasks):  # 0 .. 0.85: the attributions
        wb = workbench(task, span(progress, 0.85 * i / n, 0.85 * (i + 1) / n, f"{task.name}: "))
        if wb.attribution is None or wb.settings != settings:
            raise ValueError("workbench() must return the task's workbench for these settings, with its attribution")
        wbs.append(wb)
    heads = [tuple(wb.attribution.top_heads(top_k)) for wb in wbs]  # type: ignore[union-attr]
    values = [fv.function_vector_values(lm, wb.stats.mean_heads, h) for wb, h in zip(wbs, heads)]  # [d_model] each
    if layer == "auto":  # 0.85 .. 0.92: each source's best layer on its own validation queries
        layers = []
        for i, (wb, v) in enumerate(zip(wbs, values)):
            stage = span(
                progress, 0.85 + 0.07 * i / n, 0.85 + 0.07 * (i + 1) / n, f"{wb.task.name}: choosing a layer: "
            )
            layers.append(choose_layer(lm, wb, v, n_eval, progress=stage)[0])
    else:
        layers = [layer] * n
    vectors = [fv.make_vector(lm, wb, h, l, values=v) for wb, h, l, v in zip(wbs, heads, layers, values)]
    transfer = torch.zeros(n, n)  # [source, target]
    zero_shot = torch.zeros(n)
    n_queries = []
    for b, task in enumerate(tasks):  # 0.92 .. 1: one pass per target, every source a group
        test = held_out_prompts(task, settings, n_eval)
        base, with_fv = accuracy_sweep(
            lm,
            test.zero_shot,
            test.targets,
            list(zip(layers, values)),
            progress=span(progress, 0.92 + 0.08 * b / n, 0.92 + 0.08 * (b + 1) / n, f"transfer to {task.name}: "),
        )
        zero_shot[b] = base
        transfer[:, b] = torch.tensor(with_fv)
        n_queries.append(len(test))
    overlap = torch.tensor([[jaccard(a, b) for b in heads] for a in heads])
    cie = torch.stack([wb.attribution.cie for wb in wbs])  # type: ignore[union-attr]  # [n_tasks, n_layers, n_heads]
    return Comparison(
        tasks=tuple(names),
        settings=settings.to_dict(),
        metric=wbs[0].attribution.metric,  # type: ignore[union-attr]
        top_k=top_k,
        layer_choice="auto" if layer == "auto" else "fixed",
        layers=tuple(layers),
        cie=cie,
        mean_cie=cie.mean(0),
        top_heads=tuple(heads),
        top_head_overlap=overlap,
        fv_cosine=cosine_matrix(vectors),
        transfer=transfer,
        zero_shot=zero_shot,
        n_eval=tuple(n_queries),
        icl_accuracy=tuple(wb.stats.icl_accuracy for wb in wbs),
        overlap=tuple(split_task(t, settings.seed).overlap for t in tasks),
        seconds=time.perf_counter() - t0,
    )
