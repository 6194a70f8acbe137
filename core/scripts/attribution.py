"""Scripts for head attribution: the mean head activations and the causal indirect effect
(CIE) of every head (Todd et al. 2023, section 2.2; the app's :mod:`core.attribution`).

Mean activations: one trace over the clean in-context prompts, each head's last-token output
averaged. The CIE of a head: on the corrupted prompts (demo labels broken), replace that
head's last-token output by its clean mean and measure how much the answer's probability (or
log-probability) rises, averaged over prompts. The script runs one whole forward per head,
the plain method written for reading; the app gets the same numbers from a reused key/value
cache and batched heads.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.models import ModelSpec
from core.prompts import PromptSettings, icl_prompts
from core.scripts.common import WILSON, assemble, header, literal, model_blocks, print_block
from core.scripts.traces import (
    MEAN_ACTIVATIONS,
    MEANS_DOC,
    MEASUREMENTS,
    prompts_block,
    settings_block,
)
from core.tasks import Task


def _spec(model: ModelSpec | str) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))


_MEANS = """
mean_heads, hvector, clean_logits = mean_activations(BUILD_CLEAN)
target_ids = torch.tensor([first_token(t) for t in BUILD_TARGETS])  # [batch]
n_clean_correct = int((clean_logits.argmax(-1) == target_ids).sum())
n = len(BUILD_CLEAN)"""


def mean_activations_script(model: ModelSpec | str, task: Task, settings: PromptSettings) -> str:
    """A script printing the mean head activations ``[n_layers, n_heads, d_head]`` and the
    h-vector of every layer ``[n_layers, d_model]`` over the task's build prompts, with the
    in-context accuracy on them (the app's :func:`core.attribution.clean_stats`)."""
    spec = _spec(model)
    prompts = icl_prompts(task, settings)  # as core.fv.build_workbench
    compute = (
        _MEANS
        + """

result = {
    "model": MODEL_ID,
    "task": TASK,
    "settings": SETTINGS,
    "mean_prompts": BUILD_CLEAN,
    "targets": BUILD_TARGETS,
    "icl_accuracy": n_clean_correct / n,
    "icl_accuracy_ci": wilson(n_clean_correct, n),
    "mean_heads": mean_heads.tolist(),  # [n_layers][n_heads][d_head]
    "hvector": hvector.tolist(),  # [n_layers][d_model]
}"""
    )
    return assemble(
        header(f"Mean head activations on the task {task.name!r}", MEANS_DOC),
        *model_blocks(spec),
        WILSON,
        MEAN_ACTIVATIONS,
        settings_block(task, settings),
        prompts_block("BUILD", prompts, ("clean", "targets"), "the clean in-context prompts of the train split"),
        compute,
        print_block(),
    )


def attribution_script(
    model: ModelSpec | str,
    task: Task,
    settings: PromptSettings,
    metric: str = "prob",
    layers: Sequence[int] | None = None,
) -> str:
    """A script reproducing ``python -m core attribution``: the CIE grid ``[n_layers][n_heads]``
    (layers not in ``layers`` left ``null``; all by default), the top heads and the in-context
    accuracy of the build prompts."""
    spec = _spec(model)
    metric = metric if metric in ("prob", "logprob") else "prob"
    prompts = icl_prompts(task, settings)  # as core.fv.build_workbench
    chosen = "list(range(N_LAYERS))" if layers is None else literal(sorted({int(x) for x in layers}))
    compute = (
        _MEANS
        + f"""

METRIC = {metric!r}  # the effect on the answer's probability (the paper) or log-probability
LAYERS = {chosen}
baseline = target_metric(last_logits(CORRUPTED), target_ids, METRIC)  # [batch], no patch

# The plain method: every head patched in its own copy of the corrupted prompts, the whole
# prompt run again each time. One trace per layer, one invoke (a copy of the batch) per head:
# len(LAYERS) forwards of N_HEADS x len(CORRUPTED) rows. On SmolLM2-135M (30 layers x 9 heads)
# and 20 prompts that is 270 prompt-batches, several minutes on a laptop CPU; the app reuses the
# prompts' key/value cache and runs only the last token per head (seconds).
cie = [[None] * N_HEADS for _ in range(N_LAYERS)]  # [n_layers][n_heads]
for layer in LAYERS:
    saved = []  # one saved logits per head
    with model.trace(**LAST) as tracer:
        for head in range(N_HEADS):
            with tracer.invoke(CORRUPTED):
                z = out_proj(layer).input  # [batch, pos, n_heads * d_head]: the heads side by side
                z[:, -1, head * D_HEAD : (head + 1) * D_HEAD] = mean_heads[layer, head]  # its clean mean
                saved.append(unembed().output[:, -1].save())  # [batch, d_vocab]
    for head, logits in enumerate(saved):
        effect = target_metric(logits.float().cpu(), target_ids, METRIC) - baseline  # [batch]
        cie[layer][head] = float(effect.mean())

ranked = sorted(
    ((layer, head) for layer in LAYERS for head in range(N_HEADS)), key=lambda lh: -cie[lh[0]][lh[1]]
)
result = {{
    "model": MODEL_ID,
    "task": TASK,
    "settings": SETTINGS,
    "mean_prompts": BUILD_CLEAN,
    "clean_prompts": BUILD_CLEAN,
    "corrupted_prompts": CORRUPTED,
    "targets": BUILD_TARGETS,
    "metric": METRIC,
    "method": "reference",  # one forward per head
    "layers": LAYERS,
    "icl_accuracy": n_clean_correct / n,
    "icl_accuracy_ci": wilson(n_clean_correct, n),
    "cie": cie,
    "top_heads": [list(lh) for lh in ranked[:20]],
}}"""
    )
    return assemble(
        header(
            f"Causal indirect effect of every attention head on the task {task.name!r}",
            MEANS_DOC + " Then, on the corrupted prompts (the same demonstrations with their labels "
            f"broken: {settings.corruption}), each head's last-token output is replaced by its clean mean "
            "and the rise of the answer's " + ("probability" if metric == "prob" else "log-probability") + " is "
            "its indirect effect, averaged over prompts.",
        ),
        *model_blocks(spec),
        WILSON,
        MEASUREMENTS,
        MEAN_ACTIVATIONS,
        settings_block(task, settings),
        prompts_block("BUILD", prompts, ("clean", "targets"), "the clean in-context prompts of the train split"),
        f"# the corrupted prompts: the same demonstrations and queries, labels broken ({settings.corruption})\n"
        f"CORRUPTED = {literal(list(prompts.corrupted))}",
        compute,
        print_block(),
    )
