"""Scripts for steered generation (core.steer): the unsteered and steered continuations of
the Steer page and of ``python -m core steer``, with any vector, greedy or sampled.

A script reproduces :func:`core.steer.generate_pair` step for step, in the course's style:
the prompts are tokenized with left padding, rows ``[unsteered..., steered...]`` go through
ONE ``model.generate``, and inside ``tracer.iter`` the vector times the coefficient is added
to the residual stream block ``LAYER`` writes: at the newest token on every step (``"last"``,
function vectors and CAA, Todd et al. 2023, Rimsky et al. 2023) or once, on step 0, to the
prompt's first real tokens (``"prompt"``, activation addition, Turner et al. 2023). The
unsteered rows get ``0 * v``. Sampling is the app's coupled sampling, written out in the
script: temperature, top-p, then Gumbel noise drawn once per sample index and step from one
seeded generator, so a steered row and its unsteered twin see the same random numbers.

Where the app and a script differ, and why it does not change the result: the app generates
in pieces of :data:`core.steer.TOKENS_PER_TURN` tokens (other users' work runs in between)
and hands the key/value cache from piece to piece; a script generates in one piece. The ids
are the same (the app's tests check it), and the sampler's generator is drawn in the same
order.

The vector is inlined (a saved vector, exact float32 values) or rebuilt from its prompts
(activation addition, CAA): :mod:`core.scripts.steering_vectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core import checks
from core.errors import UserInputError
from core.models import ModelSpec
from core.scripts import common
from core.scripts.steering_vectors import InlineVector, VectorSource, vector_block
from core.steer import Decoding

SAMPLER = '''

class CoupledSampler:
    """FV Studio's coupled sampling (core/steer.py), as a logits processor after greedy
    decoding's: scores / temperature, top-p filtering, then Gumbel noise [n_samples, d_vocab]
    drawn once per step from one seeded generator; row r takes the noise of sample
    sample_index[r]. The argmax of logits + Gumbel noise is a draw from the softmax, and an
    unsteered row and its steered twin see the same noise."""

    def __init__(self, sample_index, n_samples, seed, temperature, top_p):
        self.sample_index = sample_index  # [batch]
        self.n_samples = n_samples
        self.temperature = temperature
        self.top_p = TopPLogitsWarper(top_p) if top_p < 1.0 else None
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __call__(self, input_ids, scores):
        scores = scores.float() / self.temperature  # [batch, d_vocab]
        if self.top_p is not None:
            scores = self.top_p(input_ids, scores)
        u = torch.rand(self.n_samples, scores.shape[-1], generator=self.generator)
        u = u.clamp_(min=torch.finfo(u.dtype).tiny)
        gumbel = -torch.log(-torch.log(u))  # [n_samples, d_vocab]
        return scores + gumbel[self.sample_index].to(scores.device)
'''

_DELTA_LAST = """    # "last": row r gets row_coeffs[r] * v at the newest token of every step
    ((layer, vector),) = vectors.items()
    delta = (row_coeffs[:, None] * vector[0][None]).to(hf.device, hf.dtype)  # [batch, d_model]"""

_DELTA_PROMPT = """    # "prompt": row r gets row_coeffs[r] * v[:k] on its first k = min(n_pos, length) real
    # tokens, once; rows are padded on the LEFT, so the real tokens start after the padding
    n_rows, width = ids.shape
    deltas = {}
    for layer, vector in vectors.items():
        delta = torch.zeros(n_rows, width, vector.shape[1])  # [batch, pos, d_model]
        for r, length in enumerate(mask.sum(1).tolist()):
            pad = width - length
            k = min(vector.shape[0], length)
            delta[r, pad : pad + k] = row_coeffs[r] * vector[:k]
        deltas[layer] = delta.to(hf.device, hf.dtype)"""

_EDIT_LAST = """            resid(layer)[:, -1] += delta  # [batch, d_model]: every step, the newest position"""
_EDIT_PROMPT = """            if step == 0:  # once; later tokens see the edit through the key/value cache
                for layer in sorted(deltas):  # execution order: earlier layers first
                    resid(layer)[:] += deltas[layer]  # [batch, pos, d_model]: the whole prompt"""

GENERATE = '''

def steered_generate(ids, mask, row_coeffs, vectors, max_new_tokens, options):
    """One batched generate; row r gets row_coeffs[r] * vector at the output of each block of
    vectors = {{layer: vector [n_pos, d_model]}} (one layer, except for a list of additions at
    several layers). ids, mask: [batch, pos], left-padded. Returns the new ids
    [batch, max_new_tokens] and the first step's last-position logits [batch, d_vocab].
    """
{delta}
    first_logits = []
    with model.generate(
        input_ids=ids.to(hf.device),
        attention_mask=mask.to(hf.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,  # sampling, when asked for, is the coupled sampler's argmax
        eos_token_id=None,  # every row runs all steps; texts are cut at EOS afterwards
        pad_token_id=model.tokenizer.pad_token_id,
        **options,
    ) as tracer:
        for step in tracer.iter[:max_new_tokens]:
            # step 0 sees the whole prompt, each later step one new token
{edit}
            if step == 0:
                first_logits.append(unembed().output[:, -1].save())  # [batch, d_vocab]
        out = tracer.result.save()  # [batch, pos + max_new_tokens]
    return out[:, -max_new_tokens:].cpu(), first_logits[0].float().cpu()


eos = getattr(hf.generation_config, "eos_token_id", None)
if eos is None:
    eos = model.tokenizer.eos_token_id
EOS = set() if eos is None else {{int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}}


def texts_of(new_ids):
    """Each row's continuation, cut at its first end-of-sequence token."""
    texts = []
    for row in new_ids.tolist():
        cut = next((i for i, t in enumerate(row) if t in EOS), len(row))
        texts.append(model.tokenizer.decode(row[:cut], skip_special_tokens=True))
    return texts
'''


def generate_block(mode: str) -> str:
    """Source of ``steered_generate`` (one batched, steered ``generate`` in ``mode``, the vectors
    given as ``{layer: [n_pos, d_model]}``) and ``texts_of`` (decoding cut at end-of-sequence),
    shared by the steering and sweep scripts. Needs :func:`core.scripts.common.layout_block`."""
    mode = checks.check_mode(mode)
    last = mode == "last"
    return GENERATE.format(delta=_DELTA_LAST if last else _DELTA_PROMPT, edit=_EDIT_LAST if last else _EDIT_PROMPT)


_CHANGE = '''

def next_token_change(before, after, k=8):
    """How the vector moved the first generated token's distribution: KL(steered || unsteered)
    in nats and the k tokens that rose / fell most, as (token, p_before, p_after)."""
    logp_b, logp_a = torch.log_softmax(before.float(), -1), torch.log_softmax(after.float(), -1)
    p_b, p_a = logp_b.exp(), logp_a.exp()
    kl = float((p_a * (logp_a - logp_b)).sum().clamp_min(0.0))
    diff = p_a - p_b

    def listed(order, sign):
        out = []
        for i in order.tolist():
            if sign * float(diff[i]) <= 0:
                break
            out.append([model.tokenizer.decode([i]), float(p_b[i]), float(p_a[i])])
        return out

    k = min(k, diff.numel())
    return {"kl": kl, "rose": listed(diff.topk(k).indices, 1.0), "fell": listed((-diff).topk(k).indices, -1.0)}
'''

FIRST_DIVERGENCE = '''

def first_divergence(a, b):
    """Index of the first differing character (the shorter length if one is a prefix)."""
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
'''

_RUN = """
# Rows [unsteered..., steered...]; when sampling, each prompt N_SAMPLES times (prompt-major)
n_rep = N_SAMPLES if SAMPLE else 1
rows = [p for p in PROMPTS for _ in range(n_rep)]
n_rows = len(rows)
batch = model.tokenizer(rows * 2, return_tensors="pt", padding=True)  # left padding
ids, mask = batch["input_ids"], batch["attention_mask"]  # [2 * n_rows, pos]
row_coeffs = torch.tensor([0.0] * n_rows + [COEFF] * n_rows)  # the unsteered rows get 0 * v
options = {}
if REPETITION_PENALTY != 1.0:
    options["repetition_penalty"] = float(REPETITION_PENALTY)
if SAMPLE:
    sample_index = torch.arange(2 * n_rows) % n_rep  # an unsteered row and its twin share noise
    options["logits_processor"] = LogitsProcessorList(
        [CoupledSampler(sample_index, N_SAMPLES, SEED, TEMPERATURE, TOP_P)]
    )
new_ids, logits = steered_generate(ids, mask, row_coeffs, VECTORS, MAX_NEW_TOKENS, options)
texts = texts_of(new_ids)

results = []
lengths = mask.sum(1).tolist()
for i, prompt in enumerate(PROMPTS):
    first = i * n_rep
    unsteered, steered = texts[first : first + n_rep], texts[n_rows + first : n_rows + first + n_rep]
    n_pos = VECTORS[LAYER].shape[0]
    results.append(
        {
            "prompt": prompt,
            "unsteered": unsteered,
            "steered": steered,
            "first_divergence": first_divergence(unsteered[0], steered[0]),
            "next_token_change": next_token_change(logits[first], logits[n_rows + first]),
            "n_steered_positions": min(n_pos, lengths[first]) if MODE == "prompt" else 1,
        }
    )
result = {
    "model": MODEL_ID,
    "prompt": PROMPTS[0],
    "unsteered": results[0]["unsteered"][0],
    "steered": results[0]["steered"][0],
    "first_divergence": results[0]["first_divergence"],
    "next_token_change": results[0]["next_token_change"],
    "settings": {
        "layer": LAYER,
        "coeff": COEFF,
        "mode": MODE,
        "max_new_tokens": MAX_NEW_TOKENS,
        "seed": SEED,
        "sample": SAMPLE,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "repetition_penalty": REPETITION_PENALTY,
        "n_samples": N_SAMPLES,
    },
    "vector": VECTOR_INFO,
    "results": results,
}
"""


def spaced(*blocks: str) -> str:
    """Source blocks that define functions or classes, two blank lines apart (PEP 8)."""
    return "\n\n\n".join(b.strip("\n") for b in blocks if b.strip())


def settings_block(names_values: Sequence[tuple[str, Any, str]]) -> str:
    """``NAME = value  # comment`` lines, one per setting (values inlined as literals)."""
    lines = []
    for name, value, comment in names_values:
        line = f"{name} = {common.literal(value)}"
        lines.append(f"{line}  # {comment}" if comment else line)
    return "\n".join(lines)


def steer_script(
    spec: ModelSpec,
    prompts: Sequence[str],
    source: VectorSource,
    layer: int,
    coeff: float,
    mode: str,
    max_new_tokens: int,
    decoding: Decoding | None = None,
) -> str:
    """A standalone script reproducing :func:`core.steer.generate_pair` for these settings.

    It prints JSON with the keys of ``python -m core steer`` (``model``, ``prompt``,
    ``unsteered``, ``steered``, ``first_divergence``, ``next_token_change``, ``settings``,
    ``vector``) for the first prompt's first sample, and ``results``: every prompt's samples
    and next-token change. Settings are checked as the app checks them; nothing runs here.
    """
    mode = checks.check_mode(mode)
    prompts = checks.check_prompts(list(prompts))
    layer = checks.check_layer(layer)
    coeff = checks.check_coeff(coeff)
    max_new_tokens = checks.check_max_new_tokens(max_new_tokens)
    decoding = (decoding or Decoding()).checked()
    if mode == "last" and isinstance(source, InlineVector) and source.values.dim() == 2 and len(source.values) != 1:
        raise UserInputError(
            f"A vector of {len(source.values)} positions can only be added at the prompt's first positions."
        )
    where = "at the newest token on every step" if mode == "last" else "once, at the prompt's first positions"
    what = (
        f"The prompts continued unsteered and steered: {source.describe()} times {coeff:g} is added to the "
        f"output of decoder block {layer} {where}. Both columns come from one batched generate with the same "
        + (
            f"coupled sampling (temperature {decoding.temperature:g}, top-p {decoding.top_p:g}, seed {decoding.seed})."
            if decoding.sample
            else "greedy decoding."
        )
    )
    settings = settings_block(
        [
            ("MODEL_ID", spec.model_id, "as FV Studio names the model"),
            ("PROMPTS", list(prompts), ""),
            ("LAYER", int(layer), "the block whose output (the residual stream) gets the vector"),
            ("COEFF", float(coeff), "the vector is multiplied by this; 0 gives the unsteered text"),
            ("MODE", mode, '"last": every step at the newest token; "prompt": first positions, once'),
            ("MAX_NEW_TOKENS", int(max_new_tokens), ""),
            ("SAMPLE", bool(decoding.sample), "False: greedy"),
            ("TEMPERATURE", float(decoding.temperature), "sampling only"),
            ("TOP_P", float(decoding.top_p), "sampling only"),
            ("REPETITION_PENALTY", float(decoding.repetition_penalty), "1 = none; greedy and sampling"),
            ("N_SAMPLES", int(decoding.n_samples), "per prompt, sampling only"),
            ("SEED", int(decoding.seed), ""),
        ]
    )
    return common.assemble(
        common.header("Steered generation", what),
        "from transformers import LogitsProcessorList, TopPLogitsWarper",
        common.load_block(spec),
        common.layout_block(),
        settings,
        vector_block(source, [layer]),
        spaced(generate_block(mode), _CHANGE, FIRST_DIVERGENCE, SAMPLER if decoding.sample else "", _RUN),
        common.print_block(),
    )
