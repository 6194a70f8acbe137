"""Scripts for the coefficient x layer sweep (core.sweep) of the Steering vectors page.

A script continues one prompt greedily for every (layer, coefficient), each layer with the
vector built at that layer (activation addition or CAA, rebuilt from its prompts in the
script, or an inlined vector), exactly as :func:`core.sweep.sweep` does: each layer is one
batched ``generate`` whose rows are the coefficients, the first layer carrying one more row
with coefficient 0, the unsteered baseline. Each text is scored by the probability of a
target word as the first new token, or by the fraction of keywords it contains. It prints
the fields of :class:`core.sweep.SweepResult` as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from core import checks
from core.models import ModelSpec
from core.scripts import common
from core.scripts.steering import generate_block, settings_block, spaced
from core.scripts.steering_vectors import VectorSource, vector_block

_SCORE = '''

def keyword_hit_rate(text, keywords):
    """Fraction of keywords that occur in text as whole words (case-insensitive)."""
    if not keywords:
        return 0.0
    hits = sum(bool(re.search(rf"(?<!\\w){re.escape(k)}(?!\\w)", text, re.IGNORECASE)) for k in keywords)
    return hits / len(keywords)


target_id, score_name = None, None
if TARGET_WORD is not None and TARGET_WORD.strip():
    target_id = first_token(" " + TARGET_WORD.strip())  # the word with its leading space
    score_name = f"p({decode(target_id)!r}) at the first new token"
elif KEYWORDS:
    score_name = "keyword hit rate"


def score(text, logits):
    if target_id is not None:
        return float(torch.softmax(logits.float(), -1)[target_id])
    if KEYWORDS:
        return keyword_hit_rate(text, KEYWORDS)
    return None
'''

_RUN = """
texts = [[""] * len(LAYERS) for _ in COEFFS]  # [n_coeffs][n_layers]
scores = [[None] * len(LAYERS) for _ in COEFFS]
for li, layer in enumerate(LAYERS):
    row_coeffs = list(COEFFS) + ([0.0] if li == 0 else [])  # the first layer's last row: unsteered
    batch = model.tokenizer([PROMPT] * len(row_coeffs), return_tensors="pt", padding=True)
    new_ids, logits = steered_generate(
        batch["input_ids"], batch["attention_mask"], torch.tensor(row_coeffs), {layer: VECTORS[layer]}, MAX_NEW_TOKENS, {}
    )
    row_texts = texts_of(new_ids)
    for ci in range(len(COEFFS)):
        texts[ci][li] = row_texts[ci]
        scores[ci][li] = score(row_texts[ci], logits[ci])
    if li == 0:
        baseline_text, baseline_score = row_texts[-1], score(row_texts[-1], logits[-1])

result = {
    "prompt": PROMPT,
    "mode": MODE,
    "layers": LAYERS,
    "coeffs": COEFFS,
    "texts": texts,
    "scores": scores if score_name else None,
    "score_name": score_name,
    "baseline_text": baseline_text,
    "baseline_score": baseline_score,
    # each layer's vector: mean norm per position
    "vector_norms": [float(VECTORS[layer].float().norm(dim=-1).mean()) for layer in LAYERS],
    "vector": VECTOR_INFO,
}
"""


def sweep_script(
    spec: ModelSpec,
    prompt: str,
    source: VectorSource,
    layers: Sequence[int],
    coeffs: Sequence[float],
    mode: str,
    max_new_tokens: int = 20,
    target_word: str | None = None,
    keywords: Sequence[str] | None = None,
) -> str:
    """A standalone script reproducing :func:`core.sweep.sweep` over ``layers`` x ``coeffs``
    (in that order), the vector of each layer from ``source``. Checked as the app checks the
    grid; nothing runs here."""
    mode = checks.check_mode(mode)
    prompt = checks.check_text(prompt, "prompt")
    max_new_tokens = checks.check_max_new_tokens(max_new_tokens)
    layers = [checks.check_layer(layer) for layer in layers]
    coeffs = [checks.check_coeff(c) for c in coeffs]
    checks.check_sweep_grid(layers, coeffs)
    target = target_word.strip() if target_word and target_word.strip() else None
    words = [k.strip() for k in (keywords or []) if k and k.strip()]
    scored = f"p(' {target}') at the first new token" if target else ("keyword hits" if words else "no score")
    what = (
        f"Greedy continuations of one prompt for every layer in {layers} and coefficient in {coeffs}: "
        f"{source.describe()}, built at each layer and added "
        + ("at the newest token on every step" if mode == "last" else "once, at the prompt's first positions")
        + f"; each text scored by {scored}."
    )
    settings = settings_block(
        [
            ("PROMPT", prompt, ""),
            ("LAYERS", layers, "the grid's columns; each uses the vector built at that layer"),
            ("COEFFS", coeffs, "the grid's rows"),
            ("MODE", mode, '"last": every step at the newest token; "prompt": first positions, once'),
            ("MAX_NEW_TOKENS", int(max_new_tokens), "greedy"),
            ("TARGET_WORD", target, "scored as p(' word') at the first new token"),
            ("KEYWORDS", words, "scored as the fraction present, when there is no target word"),
        ]
    )
    return common.assemble(
        common.header("Coefficient x layer sweep", what),
        "import re",
        common.load_block(spec),
        common.layout_block(),
        common.TOKEN_HELPERS,
        settings,
        vector_block(source, layers),
        spaced(generate_block(mode), _SCORE, _RUN),
        common.print_block(),
    )
