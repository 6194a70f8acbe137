"""Scripts for the function vector: building it, evaluating it, decoding it (Todd et al.
2023; the app's :func:`core.fv.evaluate`).

The function vector is the sum, over a few heads with a large indirect effect, of each head's
mean output written into the residual stream: the out-projection applied to the head's mean
slice with every other head's slice zero (so the projection's bias counts once per head).
Added after block ``layer`` at the last token of zero-shot queries it makes the model perform
the task; the script measures top-1 accuracy with and without it on held-out zero-shot and
shuffled-label prompts, sweeps the layer, sweeps the h-vector for comparison, and decodes the
vector (final norm, then unembedding).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.models import ModelSpec
from core.prompts import PromptSettings, held_out_prompts, icl_prompts, split_task
from core.scripts.common import assemble, header, literal, model_blocks, print_block
from core.scripts.traces import (
    MEAN_ACTIVATIONS,
    MEANS_DOC,
    MEASUREMENTS,
    prompts_block,
    settings_block,
)
from core.tasks import Task

BUILD_VECTOR = '''

def function_vector(mean_heads, heads):
    """[d_model]: each head's mean output through its layer's out-projection, the other heads'
    slices zero (the bias, where there is one, is added once per head), summed over heads."""
    total = 0
    for layer, head in heads:
        z = torch.zeros(1, N_HEADS * D_HEAD, device=hf.device, dtype=hf.dtype)  # [1, n_heads * d_head]
        z[0, head * D_HEAD : (head + 1) * D_HEAD] = mean_heads[layer, head]
        total = total + out_proj(layer, hf)(z)[0].float().cpu()  # [d_model]
    return total


def decode_vector(vector, k=15):
    """The tokens a vector promotes: final norm, then the unembedding; top-k logits."""
    hidden = vector.to(hf.device, hf.dtype)[None, None]  # [1, 1, d_model]
    logits = unembed(hf)(final_norm(hf)(hidden))[0, -1].float().cpu()  # [d_vocab]
    top = logits.topk(k)
    return [[decode(i), float(x)] for x, i in zip(top.values, top.indices)]
'''


def fv_script(
    model: ModelSpec | str,
    task: Task,
    settings: PromptSettings,
    heads: Sequence[tuple[int, int]],
    layer: int,
    n_eval: int = 50,
    coeff: float = 1.0,
    layer_choice: str = "given",
) -> str:
    """A script reproducing the first-token numbers of ``python -m core fv`` (same keys):
    ``heads``, ``layer``, ``icl_accuracy``, ``zero_shot_baseline``, ``zero_shot_by_layer``,
    ``zero_shot_with_fv``, ``shuffled_baseline``, ``shuffled_with_fv``, ``hvector_by_layer``,
    ``hvector_best_layer``, ``hvector_best_accuracy``, ``decoded_tokens``, ``n_eval``,
    ``coeff``, ``overlap``, ``best_test_layer`` and the ``examples`` table (without its
    generated answers). The heads and the layer are the app's (a layer
    it chose on valid queries is inlined as given); the heads curve, the layer choice and the
    generated answers are not part of the script."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    build = icl_prompts(task, settings)  # as core.fv.build_workbench
    test = held_out_prompts(task, settings, n_eval)[1]
    overlap = split_task(task, settings.seed).overlap
    compute = f"""
HEADS = {literal([[int(l), int(h)] for l, h in heads])}  # (layer, head), largest effect first
LAYER = {int(layer)!r}  # where the vector is added ({layer_choice})
COEFF = {float(coeff)!r}
OVERLAP = {overlap!r}  # a small task: the test queries are among the build prompts' pairs

mean_heads, hvector, _ = mean_activations(BUILD_CLEAN)  # [n_layers, n_heads, d_head], [n_layers, d_model]
fv = function_vector(mean_heads, HEADS)  # [d_model]

# zero-shot queries: no vector, then the vector added at each layer
zero_shot_baseline = accuracy(TEST_ZERO_SHOT, TEST_TARGETS)
zero_shot_by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(l, COEFF * fv) for l in range(N_LAYERS)])
# the h-vector of each layer at its own layer, for comparison
hvector_by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(l, hvector[l]) for l in range(N_LAYERS)])
hvector_best_layer = max(range(N_LAYERS), key=lambda l: hvector_by_layer[l])
# shuffled-label prompts: the demonstrations no longer show the task
shuffled_baseline = accuracy(TEST_CORRUPTED, TEST_TARGETS)
shuffled_with_fv = accuracy(TEST_CORRUPTED, TEST_TARGETS, LAYER, COEFF * fv)
icl_accuracy = accuracy(TEST_CLEAN, TEST_TARGETS)

# the first queries' predictions without and with the vector, for a table
n_ex = min(12, len(TEST_ZERO_SHOT))
without = last_logits(TEST_ZERO_SHOT[:n_ex]).argmax(-1)
with_fv = last_logits(TEST_ZERO_SHOT[:n_ex], LAYER, COEFF * fv).argmax(-1)
examples = [
    {{
        "query": TEST_QUERIES[i],
        "target": TEST_TARGETS[i].strip(),
        "without": decode(without[i]),
        "with vector": decode(with_fv[i]),
        "correct with": int(with_fv[i]) == first_token(TEST_TARGETS[i]),
    }}
    for i in range(n_ex)
]

result = {{
    "model": MODEL_ID,
    "task": TASK,
    "heads": HEADS,
    "layer": LAYER,
    "layer_choice": {layer_choice!r},
    "icl_accuracy": icl_accuracy,
    "zero_shot_baseline": zero_shot_baseline,
    "zero_shot_by_layer": zero_shot_by_layer,
    "zero_shot_with_fv": zero_shot_by_layer[LAYER],
    "shuffled_baseline": shuffled_baseline,
    "shuffled_with_fv": shuffled_with_fv,
    "hvector_by_layer": hvector_by_layer,
    "hvector_best_layer": hvector_best_layer,
    "hvector_best_accuracy": hvector_by_layer[hvector_best_layer],
    "decoded_tokens": decode_vector(fv),
    "n_eval": len(TEST_ZERO_SHOT),
    "coeff": COEFF,
    "overlap": OVERLAP,
    "best_test_layer": max(range(N_LAYERS), key=lambda l: zero_shot_by_layer[l]),
    "examples": examples,  # without the app's generated answers
}}"""
    return assemble(
        header(
            f"The function vector of the task {task.name!r}: built, evaluated, decoded",
            MEANS_DOC + " The chosen heads' mean outputs, through the out-projection, sum to the function "
            "vector; it is added at the last token of held-out zero-shot and shuffled-label prompts.",
        ),
        *model_blocks(spec),
        MEASUREMENTS,
        MEAN_ACTIVATIONS,
        BUILD_VECTOR,
        settings_block(task, settings),
        prompts_block("BUILD", build, ("clean",), "the clean in-context prompts the heads' means average over"),
        prompts_block(
            "TEST",
            test,
            ("zero_shot", "corrupted", "clean", "targets"),
            f"held-out test queries: alone, with broken labels ({settings.corruption}), with demonstrations",
        )
        + f"\nTEST_QUERIES = {literal([q.input for q in test.queries])}",
        compute,
        print_block(),
    )
