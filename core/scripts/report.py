"""The script of the Task report (``python -m core report``; the app's :mod:`core.report`).

The report's four stages, written with the pieces the other scripts use: one clean forward
over the in-context build prompts (mean head outputs, h-vectors, in-context accuracy), every
head's causal indirect effect on the shuffled prompts (Todd et al. 2023, section 2.2), the
function vector of the top heads evaluated on held-out queries (zero-shot, shuffled labels, in
context, at every layer; the h-vector sweep), and one steered free generation (greedy,
``"last"`` mode). The layer is the one FV Studio chose on validation queries, inlined; the
verdict sentences and the function vector's heads curve and layer choice are not recomputed
(the fv script has them).
"""

from __future__ import annotations

from core.models import ModelSpec
from core.prompts import PromptSettings, held_out_prompts, icl_prompts, split_task
from core.report import ReportOptions
from core.scripts.common import WILSON, assemble, header, literal, model_blocks, print_block
from core.scripts.function_vector import BUILD_VECTOR
from core.scripts.steering import FIRST_DIVERGENCE, generate_block
from core.scripts.traces import (
    ANSWER_MATCH,
    GREEDY_PAIRS,
    INDIRECT_EFFECTS,
    MEAN_ACTIVATIONS,
    MEANS_DOC,
    MEASUREMENTS,
    answer_settings_block,
    prompts_block,
    settings_block,
)
from core.tasks import Task

_COMPUTE = """
OPTIONS = {options}
METRIC = OPTIONS["metric"]  # the indirect effect on the answer's probability or log-probability
TOP_K = OPTIONS["top_k"]  # heads in the function vector
COEFF = OPTIONS["coeff"]  # the vector's coefficient (evaluation and generation)
MAX_NEW_TOKENS = OPTIONS["max_new_tokens"]  # of the free generation
LAYER = {layer!r}  # where the vector is added: FV Studio's choice on validation queries ({layer_choice})
N_PAIRS = {n_pairs!r}
OVERLAP = {overlap!r}  # a small task: the test queries are among the build prompts' pairs

# 1/4 one clean forward: mean head outputs, h-vectors, in-context accuracy of the build prompts
mean_heads, hvector, clean_logits = mean_activations(BUILD_CLEAN)  # [n_layers, n_heads, d_head], [n_layers, d_model]
build_ids = torch.tensor([first_token(t) for t in BUILD_TARGETS])  # [batch]
n_build_correct = int((clean_logits.argmax(-1) == build_ids).sum())

# 2/4 every head patched on the shuffled prompts
cie = indirect_effects(CORRUPTED, mean_heads, build_ids, METRIC)  # [n_layers][n_heads]
heads = top_heads(cie, TOP_K)

# 3/4 the function vector of the top heads, on held-out queries
fv = function_vector(mean_heads, heads)  # [d_model]
zero_shot_baseline = accuracy(TEST_ZERO_SHOT, TEST_TARGETS)
zero_shot_by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(l, COEFF * fv) for l in range(N_LAYERS)])
hvector_by_layer = accuracy_by_layer(TEST_ZERO_SHOT, TEST_TARGETS, [(l, hvector[l]) for l in range(N_LAYERS)])
hvector_best_layer = max(range(N_LAYERS), key=lambda l: hvector_by_layer[l])
shuffled_baseline = accuracy(TEST_CORRUPTED, TEST_TARGETS)
shuffled_with_fv = accuracy(TEST_CORRUPTED, TEST_TARGETS, LAYER, COEFF * fv)
icl_accuracy = accuracy(TEST_CLEAN, TEST_TARGETS)
# whole answers, generated greedily without and with the vector at LAYER
answer_tokens = answer_budget(TEST_TARGETS)
generated_without, generated_with = greedy_pairs(TEST_ZERO_SHOT, LAYER, COEFF * fv, answer_tokens)
correct_without = [is_match(g, t) for g, t in zip(generated_without, TEST_TARGETS)]
correct_with = [is_match(g, t) for g, t in zip(generated_with, TEST_TARGETS)]

# 4/4 the free generation, unsteered and steered in one batch
(unsteered,), (steered,) = greedy_pairs([PROMPT], LAYER, COEFF * fv, MAX_NEW_TOKENS)

n = len(TEST_ZERO_SHOT)
accuracies = {{
    "icl_accuracy": icl_accuracy,
    "zero_shot_accuracy": zero_shot_baseline,
    "zero_shot_with_fv": zero_shot_by_layer[LAYER],
    "shuffled_baseline": shuffled_baseline,
    "shuffled_with_fv": shuffled_with_fv,
    "hvector_best_accuracy": hvector_by_layer[hvector_best_layer],
    "zero_shot_generation_accuracy": sum(correct_without) / n,
    "zero_shot_with_fv_generation_accuracy": sum(correct_with) / n,
}}
result = {{"model": MODEL_ID, "task": TASK, "n_pairs": N_PAIRS, "n_shots": SETTINGS["n_shots"]}}
result.update({{"settings": SETTINGS, "options": OPTIONS, "n_eval": n}})
for name, value in accuracies.items():  # each accuracy with its 95% interval on the n test queries
    result[name] = value
    result[name + "_ci"] = wilson(round(value * n), n)
result["icl_accuracy_build_prompts"] = n_build_correct / len(BUILD_CLEAN)
result["icl_accuracy_build_prompts_ci"] = wilson(n_build_correct, len(BUILD_CLEAN))
result["top_heads"] = [[l, h, cie[l][h]] for l, h in heads]
result["cie"] = cie
result["metric"] = METRIC
result["layer"] = LAYER
result["layer_choice"] = {layer_choice!r}
result["hvector_best_layer"] = hvector_best_layer
result["generation"] = {{
    "prompt": PROMPT,
    "unsteered": unsteered,
    "steered": steered,
    "layer": LAYER,
    "coeff": COEFF,
    "max_new_tokens": MAX_NEW_TOKENS,
    "query": QUERY,
    "target": TARGET,
    "first_divergence": first_divergence(unsteered, steered),
}}
result["function_vector"] = {{  # the first-token numbers of the function-vector report
    "heads": heads,
    "layer": LAYER,
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
    "n_eval": n,
    "coeff": COEFF,
    "overlap": OVERLAP,
}}"""


def report_script(
    model: ModelSpec | str,
    task: Task,
    settings: PromptSettings,
    options: ReportOptions,
    layer: int,
    layer_choice: str,
    prompt: str,
    query: str | None = None,
    target: str | None = None,
) -> str:
    """A script reproducing the numbers of ``python -m core report`` (its JSON's keys, without
    ``verdict``, ``stage_seconds`` and ``seconds``; ``function_vector`` holds the first-token
    numbers). ``layer`` and ``layer_choice`` are the report's; ``prompt``, ``query`` and
    ``target`` its free generation's (``query``/``target`` None for a typed prompt)."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    build = icl_prompts(task, settings)  # as core.fv.build_workbench
    test = held_out_prompts(task, settings, options.n_eval)[1]  # as core.fv.evaluate
    compute = _COMPUTE.format(
        options=literal(options.to_dict()),
        layer=int(layer),
        layer_choice=layer_choice,
        n_pairs=len(task),
        overlap=split_task(task, settings.seed).overlap,
    )
    return assemble(
        header(
            f"The Task report of {task.name!r}: in-context accuracy, heads, function vector, steering",
            MEANS_DOC + " Every head's indirect effect on the shuffled prompts ranks the heads; the top "
            "heads' mean outputs, through the out-projection, sum to the function vector, added at the last "
            "token of held-out queries and while the model writes a free continuation.",
        ),
        "import unicodedata",
        *model_blocks(spec),
        WILSON,
        MEASUREMENTS,
        MEAN_ACTIVATIONS,
        INDIRECT_EFFECTS,
        BUILD_VECTOR,
        generate_block("last"),
        GREEDY_PAIRS,
        ANSWER_MATCH,
        FIRST_DIVERGENCE,
        settings_block(task, settings),
        answer_settings_block(task, settings),
        prompts_block("BUILD", build, ("clean", "targets"), "the clean in-context prompts of the train split"),
        f"# the shuffled prompts: the same demonstrations and queries, labels broken ({settings.corruption})\n"
        f"CORRUPTED = {literal(list(build.corrupted))}",
        prompts_block(
            "TEST",
            test,
            ("zero_shot", "corrupted", "clean", "targets"),
            f"held-out test queries: alone, with broken labels ({settings.corruption}), with demonstrations",
        ),
        "# the free generation's prompt (a held-out query, zero-shot, unless one was typed)\n"
        f"PROMPT = {prompt!r}\nQUERY = {query!r}\nTARGET = {target!r}",
        compute,
        print_block(),
    )
