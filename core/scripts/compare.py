"""The script of a task comparison (``python -m core compare``; the app's :mod:`core.compare`).

For each task: its clean head means and every head's causal indirect effect (Todd et al. 2023,
section 2.2), its top-k heads and its function vector. Across tasks: the mean effect grid, the
Jaccard index of the top-k head sets, the cosine of the vectors, and the transfer matrix (task
A's vector added at the last token of task B's held-out zero-shot queries, scored on B's
answers). The layer each vector is added at is the app's (a layer it chose on validation
queries is inlined as given). The traced pieces are those of the attribution and function
vector scripts (:mod:`.traces`, :mod:`.function_vector`).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.compare import OVERLAP_MEASURE, held_out_prompts
from core.models import ModelSpec
from core.prompts import PromptSettings, icl_prompts, split_task
from core.scripts.common import WILSON, assemble, header, literal, model_blocks, print_block
from core.scripts.function_vector import BUILD_VECTOR
from core.scripts.traces import INDIRECT_EFFECTS, MEAN_ACTIVATIONS, MEANS_DOC, MEASUREMENTS
from core.tasks import Task

_COMPUTE = """
METRIC = {metric!r}  # the indirect effect on the answer's probability (the paper) or log-probability
TOP_K = {top_k!r}  # heads per task: its function vector and the overlap
LAYER_CHOICE = {layer_choice!r}  # "auto": each source's best layer on its own validation queries
LAYERS = {layers}  # the layer each task's vector is added at, in the order of TASKS
n_tasks = len(TASKS)

# each task on its own: clean means, every head's indirect effect, top heads, function vector
cie, heads, vectors, icl_accuracy = [], [], [], []
for task in TASKS:
    mean_heads, _, clean_logits = mean_activations(BUILD_CLEAN[task])  # [n_layers, n_heads, d_head]
    target_ids = torch.tensor([first_token(t) for t in BUILD_TARGETS[task]])  # [batch]
    icl_accuracy.append(float((clean_logits.argmax(-1) == target_ids).float().mean()))
    grid = torch.tensor(indirect_effects(CORRUPTED[task], mean_heads, target_ids, METRIC))  # [n_layers, n_heads]
    cie.append(grid)
    heads.append(top_heads(grid, TOP_K))
    vectors.append(function_vector(mean_heads, heads[-1]))  # [d_model]

# transfer[a][b]: task a's vector on task b's zero-shot queries, one trace per target task
transfer = [[0.0] * n_tasks for _ in range(n_tasks)]
zero_shot = []
for b, task in enumerate(TASKS):
    zero_shot.append(accuracy(TEST_ZERO_SHOT[task], TEST_TARGETS[task]))
    column = accuracy_by_layer(TEST_ZERO_SHOT[task], TEST_TARGETS[task], list(zip(LAYERS, vectors)))
    for a in range(n_tasks):
        transfer[a][b] = column[a]
n_eval = [len(TEST_ZERO_SHOT[task]) for task in TASKS]


def jaccard(a, b):
    \"\"\"|A & B| / |A | B| of two head sets.\"\"\"
    sa, sb = {{tuple(h) for h in a}}, {{tuple(h) for h in b}}
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


unit = torch.nn.functional.normalize(torch.stack(vectors), dim=-1)  # [n_tasks, d_model]
result = {{
    "model": MODEL_ID,
    "tasks": TASKS,
    "settings": SETTINGS,
    "metric": METRIC,
    "top_k": TOP_K,
    "overlap_measure": {overlap_measure!r},
    "layer_choice": LAYER_CHOICE,
    "layers": LAYERS,
    "mean_cie": torch.stack(cie).mean(0).tolist(),  # [n_layers][n_heads]
    "cie": {{task: grid.tolist() for task, grid in zip(TASKS, cie)}},
    "top_heads": dict(zip(TASKS, heads)),
    "top_head_overlap": [[jaccard(a, b) for b in heads] for a in heads],
    "fv_cosine": (unit @ unit.T).tolist(),
    "transfer": transfer,
    "transfer_ci": [
        [wilson(round(transfer[a][b] * n_eval[b]), n_eval[b]) for b in range(n_tasks)] for a in range(n_tasks)
    ],
    "zero_shot": zero_shot,
    "zero_shot_ci": [wilson(round(zero_shot[b] * n_eval[b]), n_eval[b]) for b in range(n_tasks)],
    "n_eval": n_eval,
    "icl_accuracy": icl_accuracy,
    "overlap": OVERLAP,
}}"""


def compare_script(
    model: ModelSpec | str,
    tasks: Sequence[Task],
    settings: PromptSettings,
    layers: Sequence[int],
    layer_choice: str = "auto",
    metric: str = "prob",
    top_k: int = 10,
    n_eval: int = 50,
) -> str:
    """A script reproducing ``python -m core compare`` (same keys, without ``seconds``) for
    ``tasks`` on one model and prompt settings; ``layers`` are the layers the app added each
    task's vector at (the comparison's ``layers``). Every task's attribution runs one plain
    forward per head: slow on a real model (minutes per task on a laptop CPU)."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    if len(layers) != len(tasks):
        raise ValueError(f"one layer per task (got {len(layers)} for {len(tasks)} tasks)")
    metric = metric if metric in ("prob", "logprob") else "prob"
    builds = {t.name: icl_prompts(t, settings) for t in tasks}  # as core.fv.build_workbench
    tests = {t.name: held_out_prompts(t, settings, n_eval) for t in tasks}  # as core.compare

    def per_task(name: str, prompts: dict, kind: str) -> str:
        return f"{name} = {literal({t: list(getattr(p, kind)) for t, p in prompts.items()})}"

    data = "\n".join(
        [
            f"TASKS = {literal([t.name for t in tasks])}",
            f"SETTINGS = {literal(settings.to_dict())}",
            "# per task: the clean in-context prompts of its train split, their answers, and the same",
            f"# prompts with their labels broken ({settings.corruption})",
            per_task("BUILD_CLEAN", builds, "clean"),
            per_task("BUILD_TARGETS", builds, "targets"),
            per_task("CORRUPTED", builds, "corrupted"),
            "# per task: its held-out test queries alone (zero-shot) and their answers",
            per_task("TEST_ZERO_SHOT", tests, "zero_shot"),
            per_task("TEST_TARGETS", tests, "targets"),
            "# per task: too small to split, its test queries are among the build prompts' pairs",
            f"OVERLAP = {literal([split_task(t, settings.seed).overlap for t in tasks])}",
        ]
    )
    compute = _COMPUTE.format(
        metric=metric,
        top_k=int(top_k),
        layer_choice=layer_choice,
        layers=literal([int(layer) for layer in layers]),
        overlap_measure=OVERLAP_MEASURE,
    )
    return assemble(
        header(
            f"Tasks compared: {', '.join(t.name for t in tasks)}",
            MEANS_DOC + " For each task, every head's indirect effect on its corrupted prompts; its top heads' "
            "mean outputs, through the out-projection, sum to its function vector. Across tasks: the mean "
            "effect, the overlap of the top heads, the cosine of the vectors, and each vector added at the "
            "last token of every task's zero-shot queries (transfer).",
        ),
        *model_blocks(spec),
        WILSON,
        MEASUREMENTS,
        MEAN_ACTIVATIONS,
        INDIRECT_EFFECTS,
        BUILD_VECTOR,
        data,
        compute,
        print_block(),
    )
