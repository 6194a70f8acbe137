"""Scripts for the function vector: building it, evaluating it, decoding it (Todd et al.
2023; the app's :func:`core.fv.evaluate`).

The function vector is the sum, over a few heads with a large indirect effect, of each head's
mean output written into the residual stream: the out-projection applied to the head's mean
slice with every other head's slice zero (so the projection's bias counts once per head).
Added after block ``layer`` at the last token of zero-shot queries it makes the model perform
the task; the script measures top-1 accuracy with and without it on held-out zero-shot and
shuffled-label prompts, sweeps the layer, sweeps the h-vector for comparison, draws the heads
curve (the top 1, 2, ... heads' vector at the layer), generates whole answers greedily without
and with the vector and matches them (:mod:`core.generation_scoring`), and decodes the vector
(final norm, then unembedding). With the layer ``"auto"`` it chooses the layer as the app does
(:mod:`core.layer_choice`), on valid and train queries, and prints the rule's inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.models import ModelSpec
from core.prompts import PromptSettings, held_out_prompts, icl_prompts, split_task
from core.scripts.common import WILSON, assemble, header, literal, model_blocks, print_block
from core.scripts.traces import (
    ANSWER_MATCH,
    GREEDY_PAIRS,
    MEAN_ACTIVATIONS,
    MEANS_DOC,
    MEASUREMENTS,
    SCORES_BY_LAYER,
    answer_settings_block,
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


CHOOSE_LAYER = '''

def choose_layer(vector):
    """FV Studio's layer choice (core/layer_choice.py): `vector` added at each layer of the
    zero-shot layer-choice queries (VALID_*). Among the layers whose accuracy lies inside the
    95% Wilson interval of the best layer's (tied with it on these queries), the one that raises
    the answer's mean first-token log-probability most (then accuracy). Returns (layer,
    accuracy per layer, the rule's inputs)."""
    accuracies, logprobs = scores_by_layer(VALID_ZERO_SHOT, VALID_TARGETS, [(l, vector) for l in range(N_LAYERS)])
    n = len(VALID_ZERO_SHOT)
    correct = [round(a * n) for a in accuracies]  # right answers per layer
    low = wilson(max(correct), n)["low"]
    # the best layers always count (with 0 right the bound is about 1e-17, not 0)
    tied = [l for l in range(N_LAYERS) if correct[l] == max(correct) or correct[l] / n >= low]
    layer = max(tied, key=lambda l: (logprobs[l], accuracies[l]))
    return layer, accuracies, {"valid_logprob_by_layer": logprobs, "tied_low": low, "tied_layers": tied}
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
    curve_heads: Sequence[tuple[int, int]] | None = None,
) -> str:
    """A script reproducing every number of ``python -m core fv`` (same keys): ``heads``,
    ``layer``, ``layer_choice``, ``valid_by_layer``, ``n_valid``, ``icl_accuracy``,
    ``zero_shot_baseline``, ``zero_shot_by_layer``, ``zero_shot_with_fv``,
    ``shuffled_baseline``, ``shuffled_with_fv``, ``hvector_by_layer``, ``hvector_best_layer``,
    ``hvector_best_accuracy``, ``heads_curve``, the whole-answer accuracies
    (``zero_shot_generation_accuracy``, ``zero_shot_with_fv_generation_accuracy``,
    ``generation_max_new_tokens``, ``generation_case_sensitive``), ``decoded_tokens``,
    ``n_eval``, ``coeff``, ``overlap``, ``best_test_layer``, each accuracy's ``_ci`` interval,
    and the ``examples`` table with its generated answers.

    ``layer``: the app's layer. With a ``layer_choice`` starting with ``"auto"`` the script
    chooses it again on the layer-choice queries (inlined) and also prints ``layer_rule``, the
    rule's inputs (log-probability per layer, the tie bound, the tied layers); otherwise it is
    inlined as given. ``curve_heads``: the heads of the heads curve in order, the app's
    ``attribution.top_heads(len(heads))`` (:func:`core.fv.evaluate`); ``None``: ``heads``,
    which is the same when the heads are the attribution's top ones."""
    from core.layer_choice import layer_choice_prompts
    from core.results import FVReport  # which accuracies and curves carry an interval
    from core.scripts.steering import generate_block

    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    build = icl_prompts(task, settings)  # as core.fv.build_workbench
    test = held_out_prompts(task, settings, n_eval)[1]
    overlap = split_task(task, settings.seed).overlap
    auto = str(layer_choice).startswith("auto")
    curve = list(heads if curve_heads is None else curve_heads)
    if auto:
        valid = layer_choice_prompts(task, settings, n_eval)
        layer_lines = (
            f"# the layer is chosen below, on the layer-choice queries (FV Studio chose {int(layer)})\n"
            "LAYER, valid_by_layer, layer_rule = choose_layer(COEFF * fv)\n"
            "n_valid = len(VALID_ZERO_SHOT)"
        )
    else:
        layer_lines = f"LAYER = {int(layer)!r}  # where the vector is added (given)\nvalid_by_layer, n_valid = [], 0  # nothing chosen"
    compute = f"""
HEADS = {literal([[int(l), int(h)] for l, h in heads])}  # (layer, head), largest effect first
# the heads curve adds the top 1, 2, ... of these (the attribution's top heads, in order)
CURVE_HEADS = {literal([[int(l), int(h)] for l, h in curve])}
COEFF = {float(coeff)!r}
OVERLAP = {overlap!r}  # a small task: the test queries are among the build prompts' pairs

mean_heads, hvector, _ = mean_activations(BUILD_CLEAN)  # [n_layers, n_heads, d_head], [n_layers, d_model]
fv = function_vector(mean_heads, HEADS)  # [d_model]
{layer_lines}

# zero-shot queries: no vector, then the vector added at each layer
zero_shot_baseline = accuracy(TEST_ZERO_SHOT, TEST_TARGETS)
zero_shot_by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(l, COEFF * fv) for l in range(N_LAYERS)])
# the h-vector of each layer at its own layer, for comparison
hvector_by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(l, hvector[l]) for l in range(N_LAYERS)])
hvector_best_layer = max(range(N_LAYERS), key=lambda l: hvector_by_layer[l])
# shuffled-label prompts: the demonstrations no longer show the task
shuffled_baseline = accuracy(TEST_CORRUPTED, TEST_TARGETS)
shuffled_with_fv = accuracy(TEST_CORRUPTED, TEST_TARGETS, LAYER, COEFF * fv)
# the heads curve: the vector of the top k heads at LAYER, for k = 1, 2, ...
curve_vectors = [
    (LAYER, COEFF * function_vector(mean_heads, CURVE_HEADS[:k])) for k in range(1, len(CURVE_HEADS) + 1)
]
heads_curve = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, curve_vectors)
icl_accuracy = accuracy(TEST_CLEAN, TEST_TARGETS)

# whole answers, generated greedily without and with the vector at LAYER
MAX_NEW_TOKENS = answer_budget(TEST_TARGETS)
generated_without, generated_with = greedy_pairs(TEST_ZERO_SHOT, LAYER, COEFF * fv, MAX_NEW_TOKENS)
correct_without = [is_match(g, t) for g, t in zip(generated_without, TEST_TARGETS)]
correct_with = [is_match(g, t) for g, t in zip(generated_with, TEST_TARGETS)]

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
        "generated without": generated_without[i],
        "generated with": generated_with[i],
        "generation correct with": correct_with[i],
    }}
    for i in range(n_ex)
]

result = {{
    "model": MODEL_ID,
    "task": TASK,
    "heads": HEADS,
    "layer": LAYER,
    "layer_choice": {layer_choice!r},
    "valid_by_layer": valid_by_layer,
    "n_valid": n_valid,
    "icl_accuracy": icl_accuracy,
    "zero_shot_baseline": zero_shot_baseline,
    "zero_shot_by_layer": zero_shot_by_layer,
    "zero_shot_with_fv": zero_shot_by_layer[LAYER],
    "shuffled_baseline": shuffled_baseline,
    "shuffled_with_fv": shuffled_with_fv,
    "hvector_by_layer": hvector_by_layer,
    "hvector_best_layer": hvector_best_layer,
    "hvector_best_accuracy": hvector_by_layer[hvector_best_layer],
    "heads_curve": heads_curve,
    "curve_heads": CURVE_HEADS,
    "decoded_tokens": decode_vector(fv),
    "n_eval": len(TEST_ZERO_SHOT),
    "coeff": COEFF,
    "overlap": OVERLAP,
    "zero_shot_generation_accuracy": sum(correct_without) / len(correct_without),
    "zero_shot_with_fv_generation_accuracy": sum(correct_with) / len(correct_with),
    "generation_max_new_tokens": MAX_NEW_TOKENS,
    "generation_case_sensitive": CASE_SENSITIVE,
    "best_test_layer": max(range(N_LAYERS), key=lambda l: zero_shot_by_layer[l]),
    "examples": examples,
}}
# every accuracy with its number of queries and 95% interval, as FV Studio reports it
for name in {FVReport.TEST_ACCURACIES!r}:
    result[name + "_ci"] = wilson(round(result[name] * result["n_eval"]), result["n_eval"])
for name in {FVReport.TEST_CURVES!r}:
    result[name + "_ci"] = [wilson(round(a * result["n_eval"]), result["n_eval"]) for a in result[name]]
result["valid_by_layer_ci"] = [wilson(round(a * n_valid), n_valid) for a in valid_by_layer]"""
    if auto:
        compute += '\nresult["layer_rule"] = layer_rule  # the inputs of the layer choice'
    return assemble(
        header(
            f"The function vector of the task {task.name!r}: built, evaluated, decoded",
            MEANS_DOC + " The chosen heads' mean outputs, through the out-projection, sum to the function "
            "vector; it is added at the last token of held-out zero-shot and shuffled-label prompts, "
            "and while the model writes whole answers.",
        ),
        "import unicodedata",
        *model_blocks(spec),
        MEASUREMENTS,
        SCORES_BY_LAYER if auto else "",
        MEAN_ACTIVATIONS,
        BUILD_VECTOR,
        WILSON,
        CHOOSE_LAYER if auto else "",
        generate_block("last"),
        GREEDY_PAIRS,
        ANSWER_MATCH,
        settings_block(task, settings),
        answer_settings_block(task, settings),
        prompts_block("BUILD", build, ("clean",), "the clean in-context prompts the heads' means average over"),
        prompts_block(
            "VALID",
            valid,
            ("zero_shot", "targets"),
            "the layer-choice queries: the valid split, then the train split, never the test split",
        )
        if auto
        else "",
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


def fv_report_script(model: ModelSpec | str, task: Task, settings: PromptSettings, report, n_eval: int) -> str:
    """:func:`fv_script` of a :class:`core.results.FVReport` (its heads, layer, coefficient,
    layer choice and heads-curve heads), evaluated on ``n_eval`` requested test queries: the
    pages' expanders."""
    return fv_script(
        model,
        task,
        settings,
        report.heads,
        report.layer,
        n_eval,
        report.coeff,
        report.layer_choice,
        curve_heads=report.curve_heads,
    )
