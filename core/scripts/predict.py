"""Scripts for next-token predictions: the in-context accuracy of a task (``predict``) and the
top-k next tokens of one free prompt.

The app (:mod:`core.predict`) runs the in-context prompts and the zero-shot queries through
the model, reads the logits at the last token, and scores the top-1 token against the
answer's first token (with its leading space). The script does the same in two traces.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.models import ModelSpec
from core.scripts.common import (
    WILSON,
    assemble,
    header,
    literal,
    model_blocks,
    print_block,
)
from core.scripts.traces import MEASUREMENTS


def predict_script(
    model: ModelSpec | str,
    task_name: str,
    prompts: Sequence[str],
    zero_shot: Sequence[str],
    targets: Sequence[str],
) -> str:
    """A script that reproduces ``python -m core predict`` for these prompts (a
    :class:`~core.prompts.PromptSet`'s ``clean``, ``zero_shot`` and ``targets``, as
    :func:`core.predict.predict` built them): top-1 predictions with and without
    demonstrations, and both accuracies with their 95% Wilson intervals."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    data = (
        f"TASK = {task_name!r}\n"
        "# the in-context prompts (demonstrations + query), the queries alone, and the answers\n"
        f"PROMPTS = {literal(list(prompts))}\n"
        f"ZERO_SHOT = {literal(list(zero_shot))}\n"
        f"TARGETS = {literal(list(targets))}"
    )
    compute = """
target_ids = torch.tensor([first_token(t) for t in TARGETS])  # [batch]
icl = last_logits(PROMPTS).argmax(-1)  # [batch]: top-1 token with the demonstrations
zero_shot = last_logits(ZERO_SHOT).argmax(-1)  # [batch]: top-1 token of the query alone
icl_correct = int((icl == target_ids).sum())
zero_shot_correct = int((zero_shot == target_ids).sum())
n = len(PROMPTS)

result = {
    "model": MODEL_ID,
    "task": TASK,
    "prompts": PROMPTS,
    "zero_shot_prompts": ZERO_SHOT,
    "targets": TARGETS,
    "predictions": [decode(i) for i in icl],
    "zero_shot_predictions": [decode(i) for i in zero_shot],
    "icl_accuracy": icl_correct / n,
    "icl_accuracy_ci": wilson(icl_correct, n),
    "zero_shot_accuracy": zero_shot_correct / n,
    "zero_shot_accuracy_ci": wilson(zero_shot_correct, n),
    "n_prompts": n,
}"""
    return assemble(
        header(
            f"In-context and zero-shot predictions on the task {task_name!r}",
            "Each in-context prompt (demonstrations, then a query) and each query alone runs through "
            "the model; the top-1 next token is compared with the first token of the answer.",
        ),
        *model_blocks(spec),
        WILSON,
        MEASUREMENTS,
        data,
        compute,
        print_block(),
    )


def next_token_script(model: ModelSpec | str, prompt: str, k: int = 10) -> str:
    """A script that prints the top-``k`` next tokens of one prompt with their probabilities
    (as :func:`core.inference.top_tokens` reports them): ``{"prompt", "tokens", "top"}``."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    compute = f"""
PROMPT = {prompt!r}
K = {int(k)!r}
tokens = [decode(i) for i in tokenizer(PROMPT).input_ids]
probs = last_logits([PROMPT])[0].softmax(-1)  # [d_vocab]
top = probs.topk(K)
result = {{
    "model": MODEL_ID,
    "prompt": PROMPT,
    "tokens": tokens,
    "top": [[decode(i), int(i), float(p)] for p, i in zip(top.values, top.indices)],
}}"""
    return assemble(
        header("Next-token predictions of one prompt", "The probabilities of the most likely next tokens."),
        *model_blocks(spec),
        MEASUREMENTS,
        compute,
        print_block(),
    )
