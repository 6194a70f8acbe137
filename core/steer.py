"""Steered generation: the same prompts continued unsteered and with a vector added to the
residual stream while the model writes.

Two ways of adding a vector ``v`` times a coefficient ``c`` at the output of block ``layer``:

- ``"last"``: ``c * v`` (``v [d_model]``) is added at the newest token on every decoding
  step: step 0 sees the whole prompt and gets it at the last prompt position, each later
  step sees one new token. This is how function vectors and CAA vectors are applied
  (Todd et al. 2023; Rimsky et al. 2023, "Steering Llama 2 via Contrastive Activation
  Addition").
- ``"prompt"``: activation addition (Turner et al. 2023, "Activation Addition: Steering
  Language Models Without Optimization"). ``v [n_pos, d_model]`` is the difference of the
  residual streams of two short prompts ("Love" - "Hate"), added once, on step 0, to the
  prompt's first ``n_pos`` real tokens; the edit reaches every later token through the
  key/value cache.

Unsteered and steered continuations come from ONE batched ``generate``: rows
``[unsteered..., steered...]`` share every decoding setting, and the steered rows carry the
edit (the unsteered rows get ``0 * v``, which leaves them bit-identical). Sampling is
*coupled*: each row's token is the argmax of its (temperature-scaled, top-p-filtered) logits
plus Gumbel noise drawn once per sample index and step, so an unsteered row and its steered
twin see the same random numbers. Gumbel-max draws exactly from the softmax, and the texts
differ only where the vector changed the distribution; a coefficient of 0 reproduces the
unsteered text exactly, sampled or greedy.

Batches are left-padded (nnsight's tokenizer), so position edits are offset per row by the
row's pad count; the model's end-of-sequence token does not stop the batch (every row runs
all steps, so the per-step loop is always complete) and each text is cut at its first one.

The vectors themselves are built in :mod:`core.steering_vectors`, swept over layers and
coefficients in :mod:`core.sweep`, and exported as a script by :mod:`core.scripts.steering`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from core import checks, limits
from core.checks import MODES
from core.inference import Encoded, Progress, encode, no_progress
from core.models import LoadedModel
from core.steer_diff import NextTokenChange, first_divergence, next_token_change

Mode = Literal["last", "prompt"]
__all__ = [
    "MODES",
    "TOKENS_PER_TURN",
    "Decoding",
    "Mode",
    "NextTokenChange",
    "PairResult",
    "first_divergence",
    "generate_coeff_rows",
    "generate_pair",
    "next_token_change",
]


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairResult:
    prompt: str
    unsteered: list[str]  # one continuation per sample
    steered: list[str]
    first_divergence: int | None  # first differing character of sample 0; None if equal
    next_token_change: NextTokenChange
    n_steered_positions: int  # "prompt": prompt positions that got the vector; "last": 1
    note: str = ""  # e.g. the prompt was shorter than the vector


@dataclass(frozen=True)
class Decoding:
    """Decoding settings shared by the unsteered and steered rows."""

    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    n_samples: int = 1  # greedy decoding gives one continuation whatever this says
    seed: int = 0

    def checked(self) -> Decoding:
        checks.check_n_samples(self.n_samples)
        checks.check_setting("temperature", self.temperature, 0.0, limits.MAX_TEMPERATURE)
        checks.check_setting("top-p", self.top_p, 0.0, 1.0)
        checks.check_setting("repetition penalty", self.repetition_penalty, 0.0, limits.MAX_REPETITION_PENALTY)
        checks.check_seed(self.seed)
        return self

    @property
    def n_rows_per_prompt(self) -> int:
        return self.n_samples if self.sample else 1

    def kwargs(self) -> dict[str, Any]:
        """These settings as :func:`generate_pair`'s keyword arguments (the same names)."""
        return asdict(self)


# --- the engine -------------------------------------------------------------------------------


class _CoupledSampler:
    """A logits processor that turns greedy decoding into coupled sampling.

    ``scores / temperature``, top-p filtering, then Gumbel noise ``[n_samples, d_vocab]`` drawn
    once per step from one seeded generator; row ``r`` takes the noise of sample
    ``sample_index[r]``. The argmax of logits + Gumbel noise is a draw from the softmax.
    """

    def __init__(self, sample_index: torch.Tensor, n_samples: int, seed: int, temperature: float, top_p: float):
        from transformers import TopPLogitsWarper

        self.sample_index = sample_index  # [batch]
        self.n_samples = n_samples
        self.temperature = temperature
        self.top_p = TopPLogitsWarper(top_p) if top_p < 1.0 else None
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float() / self.temperature  # [batch, d_vocab]
        if self.top_p is not None:
            scores = self.top_p(input_ids, scores)
        u = torch.rand(self.n_samples, scores.shape[-1], generator=self.generator)
        u = u.clamp_(min=torch.finfo(u.dtype).tiny)
        gumbel = -torch.log(-torch.log(u))  # [n_samples, d_vocab]
        return scores + gumbel[self.sample_index].to(scores.device)


def _eos_ids(lm: LoadedModel) -> set[int]:
    eos = getattr(getattr(lm.hf, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _decode(lm: LoadedModel, new_ids: torch.Tensor) -> list[str]:
    """Each row's continuation, cut at its first end-of-sequence token."""
    eos = _eos_ids(lm)
    texts = []
    for row in new_ids.tolist():
        cut = next((i for i, t in enumerate(row) if t in eos), len(row))
        texts.append(lm.tokenizer.decode(row[:cut], skip_special_tokens=True))
    return texts


def _prompt_delta(enc: Encoded, values: torch.Tensor, row_coeffs: torch.Tensor) -> torch.Tensor:
    """Activation addition as one additive tensor ``[batch, pos, d_model]``.

    Row ``r`` gets ``row_coeffs[r] * values[:k]`` on its first ``k = min(n_pos, length)`` real
    tokens, which start after its left padding.
    """
    n_rows, width = enc.input_ids.shape
    n_pos = values.shape[0]
    lengths = enc.attention_mask.sum(1).tolist()
    delta = torch.zeros(n_rows, width, values.shape[1])
    for r, length in enumerate(lengths):
        pad = width - int(length)
        k = min(n_pos, int(length))
        delta[r, pad : pad + k] = row_coeffs[r] * values[:k]
    return delta


TOKENS_PER_TURN = 8  # a generation gives up the model's turn this often (core.turns)


def _steered_generate(
    lm: LoadedModel,
    enc: Encoded,
    row_coeffs: torch.Tensor,
    values: torch.Tensor | None,
    layer: int,
    mode: str,
    max_new_tokens: int,
    decoding: Decoding,
    sample_index: torch.Tensor,
    progress: Progress,
    more: Sequence[tuple[int, torch.Tensor]] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched generation; row ``r`` gets ``row_coeffs[r] * values`` at block ``layer`` (and, in
    the ``"prompt"`` mode, ``row_coeffs[r] * v`` at block ``l`` for each ``(l, v)`` of ``more``).

    Returns the new token ids ``[batch, max_new_tokens]`` and the first step's last-position
    logits ``[batch, d_vocab]`` (float, CPU).

    The model is shared, so the generation runs in pieces of :data:`TOKENS_PER_TURN` tokens,
    each a ``generate`` in its own turn on the model; between pieces other users' computations
    run. The key/value cache is this generation's own and is handed from piece to piece, so
    each piece's first step processes only the newest token, exactly as an uninterrupted
    generation's next step would: the ids are the same (tests check it). Sampling draws from
    the sampler's own generator, carried across pieces. A remote model cannot keep a cache
    here, so it generates in one piece.
    """
    from transformers import DynamicCache, LogitsProcessorList

    arch = lm.arch
    n = max_new_tokens
    dtype = lm.dtype
    device = lm.device
    delta_last = delta_prompt = None
    if values is not None:
        if mode == "last":
            delta_last = (row_coeffs[:, None] * values[0][None]).to(device, dtype)  # [batch, d_model]
        else:
            delta_prompt = _prompt_delta(enc, values, row_coeffs).to(device, dtype)  # [batch, pos, d_model]
    # the "prompt" mode at several layers (core.additions): {layer: delta}, visited in execution order
    prompt_deltas: dict[int, torch.Tensor] = {} if delta_prompt is None else {layer: delta_prompt}
    for l, v in more:
        d = _prompt_delta(enc, v, row_coeffs).to(device, dtype)
        prompt_deltas[l] = prompt_deltas[l] + d if l in prompt_deltas else d
    common: dict[str, Any] = {
        "do_sample": False,  # sampling, when asked for, is the coupled processor's argmax
        "eos_token_id": None,  # every row runs all n steps; texts are cut at EOS afterwards
        "pad_token_id": lm.tokenizer.pad_token_id,
    }
    if decoding.repetition_penalty != 1.0:
        common["repetition_penalty"] = float(decoding.repetition_penalty)
    if decoding.sample:
        sampler = _CoupledSampler(sample_index, decoding.n_samples, decoding.seed, decoding.temperature, decoding.top_p)
        common["logits_processor"] = LogitsProcessorList([sampler])
    cache = None if lm.spec.remote else DynamicCache(config=lm.hf.config)
    piece = n if cache is None else TOKENS_PER_TURN
    ids, mask = enc.input_ids, enc.attention_mask  # [batch, pos], grow by each piece's tokens
    first_logits: list = []
    done = 0
    while done < n:
        k = min(piece, n - done)
        kwargs = {**common, "input_ids": ids, "attention_mask": mask, "max_new_tokens": k}
        if cache is not None:
            kwargs["past_key_values"] = cache
        with lm.locked(), torch.no_grad():
            with lm.generate(**kwargs) as tracer:
                for step in tracer.iter[:k]:
                    t = done + step  # the step of the whole generation
                    if delta_last is not None:
                        arch.block_output(lm.nn, layer)[:, -1] += delta_last  # [batch, d_model]
                    elif t == 0:
                        for l in sorted(prompt_deltas):
                            arch.block_output(lm.nn, l)[:] += prompt_deltas[l]  # [batch, pos, d_model]
                    if t == 0:
                        first_logits.append(arch.unembed(lm.nn).output[:, -1].save())  # [batch, d_vocab]
                    progress((t + 1) / n, f"token {t + 1}/{n}")
                out = tracer.result.save()  # [batch, pos + k]
        ids = out
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], k)], dim=1)
        done += k
    return ids[:, -n:].cpu(), first_logits[0].float().cpu()


# --- public API -------------------------------------------------------------------------------


def generate_pair(
    lm: LoadedModel,
    prompts: list[str],
    vector: torch.Tensor | None,
    layer: int,
    coeff: float,
    mode: Mode,
    max_new_tokens: int,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    n_samples: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
    more: Sequence[tuple[int, torch.Tensor]] = (),
) -> list[PairResult]:
    """Unsteered and steered continuations of ``prompts``, from one batched ``generate``.

    ``vector``: ``[d_model]`` (``"last"``) or ``[n_pos, d_model]`` (``"prompt"``), or ``None``
    for no steering (the steered column then repeats the unsteered one). With ``sample=False``
    decoding is greedy and each list holds one continuation; with ``sample=True`` it holds
    ``n_samples``, drawn with the same random numbers in both columns. ``more``: further
    ``(layer, [n_pos, d_model])`` vectors added like ``vector`` at their own layers (``"prompt"``
    mode only; a list of additions, :mod:`core.additions`).
    """
    progress = progress or no_progress
    mode = checks.check_mode(mode)
    prompts = checks.check_prompts(prompts)
    layer = checks.check_layer(layer, lm.arch.n_layers)
    coeff = checks.check_coeff(coeff)
    max_new_tokens = checks.check_max_new_tokens(max_new_tokens)
    decoding = Decoding(bool(sample), temperature, top_p, repetition_penalty, n_samples, seed).checked()
    values = checks.check_vector(lm, vector, mode) if vector is not None else None
    if more and (mode != "prompt" or values is None):
        raise ValueError("vectors at further layers need a first vector and the 'prompt' mode")
    more = [(checks.check_layer(l, lm.arch.n_layers), checks.check_vector(lm, v, mode)) for l, v in more]

    n_rep = decoding.n_rows_per_prompt
    rows = [p for p in prompts for _ in range(n_rep)]  # prompt-major, sample-minor
    n_cols = 1 if values is None else 2  # [unsteered..., steered...]
    enc = encode(lm, rows * n_cols)
    row_coeffs = torch.tensor([0.0] * len(rows) + [coeff] * len(rows) * (n_cols - 1))
    sample_index = torch.arange(len(rows) * n_cols) % n_rep
    new_ids, logits = _steered_generate(
        lm, enc, row_coeffs, values, layer, mode, max_new_tokens, decoding, sample_index, progress, more
    )
    texts = _decode(lm, new_ids)
    lengths = enc.attention_mask.sum(1).tolist()

    results = []
    n_rows = len(rows)
    for i, prompt in enumerate(prompts):
        first = i * n_rep
        unsteered = texts[first : first + n_rep]
        if values is None:
            steered = list(unsteered)
            change = NextTokenChange([], [], 0.0)
            n_steered, note = 0, "No vector: nothing was steered."
        else:
            steered = texts[n_rows + first : n_rows + first + n_rep]
            change = next_token_change(lm, logits[first], logits[n_rows + first])
            n_steered, note = 1, ""
            if mode == "prompt":
                n_pos, length = values.shape[0], int(lengths[first])
                n_steered = min(n_pos, length)
                if length < n_pos:
                    note = (
                        f"The prompt has {length} tokens, fewer than the vector's {n_pos} positions: "
                        f"the vector's first {length} positions were added."
                    )
        results.append(
            PairResult(
                prompt=prompt,
                unsteered=unsteered,
                steered=steered,
                first_divergence=first_divergence(unsteered[0], steered[0]),
                next_token_change=change,
                n_steered_positions=n_steered,
                note=note,
            )
        )
    return results


def generate_coeff_rows(
    lm: LoadedModel,
    prompt: str,
    coeffs: Sequence[float],
    values: torch.Tensor,
    layer: int,
    mode: Mode,
    max_new_tokens: int,
    progress: Progress | None = None,
) -> tuple[list[str], torch.Tensor]:
    """Greedy continuations of one prompt, row ``r`` steered by ``coeffs[r] * values`` at block
    ``layer``, from one batched generation (in pieces, like :func:`generate_pair`).

    ``values``: a checked vector ``[n_pos, d_model]`` (:func:`core.checks.check_vector`); the
    other arguments are taken as checked. Returns each row's text (cut at end-of-sequence) and
    the first step's last-position logits ``[n_rows, d_vocab]``. A coefficient of 0 gives the
    unsteered text, so a sweep carries its baseline as one more row.
    """
    enc = encode(lm, [prompt] * len(coeffs))
    new_ids, logits = _steered_generate(
        lm,
        enc,
        torch.tensor(list(coeffs)),
        values,
        layer,
        mode,
        max_new_tokens,
        Decoding(),
        torch.zeros(len(coeffs), dtype=torch.long),
        progress or no_progress,
    )
    return _decode(lm, new_ids), logits


def generate_greedy_pairs(
    lm: LoadedModel,
    prompts: Sequence[str],
    values: torch.Tensor,
    layer: int,
    coeff: float,
    max_new_tokens: int,
    progress: Progress | None = None,
) -> tuple[list[str], list[str]]:
    """Greedy unsteered and steered (``"last"`` mode: ``coeff * values`` at block ``layer``,
    at the last prompt token and at every new token) continuations of many built prompts,
    from one batched generation; for evaluations (core.generation_scoring), so the number of
    prompts is bounded by the prompt batch limit, not by :data:`core.limits.MAX_PROMPTS`.

    ``values``: ``[d_model]``. Returns ``(unsteered, steered)``, one text per prompt, each cut at
    its first end-of-sequence token.
    """
    prompts = checks.check_prompts(prompts, max_n=limits.MAX_N_PROMPTS)
    layer = checks.check_layer(layer, lm.arch.n_layers)
    coeff = checks.check_coeff(coeff)
    max_new_tokens = checks.check_max_new_tokens(max_new_tokens)
    vec = checks.check_vector(lm, values, "last")
    n = len(prompts)
    enc = encode(lm, list(prompts) * 2)  # [unsteered..., steered...]
    row_coeffs = torch.tensor([0.0] * n + [coeff] * n)
    new_ids, _ = _steered_generate(
        lm,
        enc,
        row_coeffs,
        vec,
        layer,
        "last",
        max_new_tokens,
        Decoding(),
        torch.zeros(2 * n, dtype=torch.long),
        progress or no_progress,
    )
    texts = _decode(lm, new_ids)
    return texts[:n], texts[n:]
