"""Scripts for task-encoding hidden states: the h-vector and its layer sweep (Todd et al.
2023, section 2.1; Hendel et al. 2023; the app's :func:`core.fv.hvector_sweep`).

The h-vector of a layer is the residual stream after that block at the last token, averaged
over clean in-context prompts of the task. The sweep adds it (coefficient 1) at the last token
of held-out zero-shot queries, one layer at a time, and measures top-1 accuracy, against the
zero-shot and in-context baselines on the same queries.
"""

from __future__ import annotations

from core.models import ModelSpec
from core.prompts import PromptSettings, held_out_prompts, icl_prompts, split_task
from core.scripts.common import assemble, header, model_blocks, print_block
from core.scripts.traces import (
    MEAN_ACTIVATIONS,
    MEASUREMENTS,
    prompts_block,
    settings_block,
)
from core.tasks import Task


def hvector_script(
    model: ModelSpec | str, task: Task, settings: PromptSettings, n_eval: int = 50, layer: int | None = None
) -> str:
    """A script printing the h-vector layer sweep with the keys of
    :class:`core.fv.HVectorSweep` (``zero_shot_baseline``, ``by_layer``, ``icl_accuracy``,
    ``n_eval``, ``overlap``, ``best_layer``); with ``layer``, also that layer's h-vector
    (``hvector``, ``[d_model]``)."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    build = icl_prompts(task, settings)  # as core.fv.build_workbench
    test = held_out_prompts(task, settings, n_eval)[1]
    overlap = split_task(task, settings.seed).overlap
    shown = "None" if layer is None else repr(int(layer))
    compute = f"""
OVERLAP = {overlap!r}  # a small task: the test queries are among the build prompts' pairs
LAYER = {shown}  # the layer whose h-vector is shown

_, hvector, _ = mean_activations(BUILD_CLEAN)  # [n_layers, d_model]

zero_shot_baseline = accuracy(TEST_ZERO_SHOT, TEST_TARGETS)
by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(layer, hvector[layer]) for layer in range(N_LAYERS)])
icl_accuracy = accuracy(TEST_CLEAN, TEST_TARGETS)

result = {{
    "model": MODEL_ID,
    "task": TASK,
    "settings": SETTINGS,
    "zero_shot_baseline": zero_shot_baseline,
    "by_layer": by_layer,
    "icl_accuracy": icl_accuracy,
    "n_eval": len(TEST_ZERO_SHOT),
    "overlap": OVERLAP,
    "best_layer": max(range(N_LAYERS), key=lambda layer: by_layer[layer]),  # the first of ties
}}
if LAYER is not None:
    result["layer"] = LAYER
    result["hvector"] = hvector[LAYER].tolist()  # [d_model]"""
    return assemble(
        header(
            f"The h-vector and its layer sweep on the task {task.name!r}",
            "The residual stream after each block at the last token, averaged over clean in-context "
            "prompts, is added at that block to held-out zero-shot queries; top-1 accuracy per layer.",
        ),
        *model_blocks(spec),
        MEASUREMENTS,
        MEAN_ACTIVATIONS,
        settings_block(task, settings),
        prompts_block("BUILD", build, ("clean",), "the clean in-context prompts the h-vector averages over"),
        prompts_block(
            "TEST", test, ("zero_shot", "clean", "targets"), "held-out test queries: alone, with demonstrations"
        ),
        compute,
        print_block(),
    )
