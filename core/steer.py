"""Steering generation: add a vector to the residual stream while the model writes.

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
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from core import arch as A
from core import limits
from core.errors import UserInputError
from core.inference import Encoded, Progress, encode, first_token_ids, run_forward
from core.models import DEFAULT_MODEL, LoadedModel, default_model_dir
from core.vectors import Vector

Mode = Literal["last", "prompt"]
MODES: tuple[str, ...] = ("last", "prompt")

N_CHANGES = 8  # tokens listed in each direction of a next-token change
from core.limits import MAX_REPETITION_PENALTY, MAX_SWEEP_CELLS, MAX_SWEEP_LAYERS, MAX_TEMPERATURE  # noqa: E402


def _noop(fraction: float, message: str) -> None:
    return None


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NextTokenChange:
    """How the vector moved the distribution of the first generated token.

    ``rose``/``fell``: ``(token, p_before, p_after)``, largest change first; ``kl`` is
    ``KL(steered || unsteered)`` in nats.
    """

    rose: list[tuple[str, float, float]]
    fell: list[tuple[str, float, float]]
    kl: float


@dataclass(frozen=True)
class PairResult:
    prompt: str
    unsteered: list[str]  # one continuation per sample
    steered: list[str]
    first_divergence: int | None  # first differing character of sample 0; None if equal
    next_token_change: NextTokenChange
    n_steered_positions: int  # "prompt": prompt positions that got the vector; "last": 1
    note: str = ""  # e.g. the prompt was shorter than the vector


# --- validation -------------------------------------------------------------------------------


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserInputError(f"Unknown steering mode '{mode}'. Choose 'last' or 'prompt'.")
    return mode


def _check_layer(lm: LoadedModel, layer: Any) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise UserInputError(f"The layer must be a whole number, not {layer!r}.")
    if not 0 <= layer < lm.arch.n_layers:
        raise UserInputError(f"Layer {layer} is out of range: this model has layers 0..{lm.arch.n_layers - 1}.")
    return layer


def _check_coeff(coeff: Any) -> float:
    if isinstance(coeff, bool) or not isinstance(coeff, (int, float)):
        raise UserInputError(f"The coefficient must be a number, not {coeff!r}.")
    coeff = float(coeff)
    if not math.isfinite(coeff):
        raise UserInputError(f"The coefficient must be a finite number (got {coeff}).")
    if abs(coeff) > limits.MAX_ABS_COEFF:
        raise UserInputError(
            f"The coefficient {coeff:g} is too large: use a value between "
            f"-{limits.MAX_ABS_COEFF:g} and {limits.MAX_ABS_COEFF:g}."
        )
    return coeff


def _check_max_new_tokens(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limits.MAX_NEW_TOKENS:
        raise UserInputError(f"New tokens must be a whole number from 1 to {limits.MAX_NEW_TOKENS} (got {n!r}).")
    return n


def _check_text(text: Any, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise UserInputError(f"The {what} is empty: type some text.")
    if len(text) > limits.MAX_PROMPT_CHARS:
        raise UserInputError(
            f"The {what} has {len(text)} characters; the limit is {limits.MAX_PROMPT_CHARS}."
        )
    return text


def _check_prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts or [])
    if not prompts:
        raise UserInputError("No prompts: type at least one prompt to steer.")
    if len(prompts) > limits.MAX_PROMPTS:
        raise UserInputError(f"{len(prompts)} prompts is too many: steer at most {limits.MAX_PROMPTS} at once.")
    for i, p in enumerate(prompts):
        _check_text(p, f"prompt {i + 1}" if len(prompts) > 1 else "prompt")
    return prompts


def _vector_values(lm: LoadedModel, vector: Any, mode: str) -> torch.Tensor:
    """The vector as float ``[n_pos, d_model]`` (``n_pos`` is 1 for ``"last"``)."""
    if isinstance(vector, Vector):
        if vector.model_id != lm.model_id:
            raise UserInputError(
                f"The vector '{vector.name}' was made for model '{vector.model_id}', but the loaded "
                f"model is '{lm.model_id}'."
            )
        vector = vector.values
    values = vector
    if not isinstance(values, torch.Tensor):
        raise UserInputError("The steering vector must be a tensor.")
    values = values.detach().float().cpu()
    if values.dim() == 1:
        values = values[None]
    if values.dim() != 2 or values.shape[0] < 1:
        raise UserInputError(
            f"The steering vector must be [d_model] or [n_pos, d_model]; got shape {tuple(values.shape)}."
        )
    if values.shape[-1] != lm.arch.d_model:
        raise UserInputError(
            f"The vector has width {values.shape[-1]}, but this model's residual stream has width "
            f"{lm.arch.d_model}: it was made for another model."
        )
    if not torch.isfinite(values).all():
        raise UserInputError("The steering vector has non-finite values (NaN or infinity).")
    if mode == "last" and values.shape[0] != 1:
        raise UserInputError(
            f"This vector has {values.shape[0]} positions (an activation-addition vector): use the "
            "'prompt' mode, which adds it to the first prompt positions."
        )
    if values.shape[0] > limits.MAX_PROMPT_TOKENS:
        raise UserInputError(f"The vector has {values.shape[0]} positions; the limit is {limits.MAX_PROMPT_TOKENS}.")
    return values


@dataclass(frozen=True)
class Decoding:
    """Decoding settings shared by the unsteered and steered rows."""

    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    n_samples: int = 1  # greedy decoding gives one continuation whatever this says
    seed: int = 0

    def checked(self) -> "Decoding":
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or not 1 <= self.n_samples <= limits.MAX_SAMPLES:
            raise UserInputError(f"Samples per prompt must be a whole number from 1 to {limits.MAX_SAMPLES}.")
        for name, value, low, high in (
            ("temperature", self.temperature, 0.0, MAX_TEMPERATURE),
            ("top-p", self.top_p, 0.0, 1.0),
            ("repetition penalty", self.repetition_penalty, 0.0, MAX_REPETITION_PENALTY),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserInputError(f"The {name} must be a finite number.")
            if not low < value <= high:
                raise UserInputError(f"The {name} must be above {low:g} and at most {high:g} (got {value:g}).")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UserInputError("The seed must be a whole number from 0 to 2^63 - 1.")
        return self

    @property
    def n_rows_per_prompt(self) -> int:
        return self.n_samples if self.sample else 1


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched generation; row ``r`` gets ``row_coeffs[r] * values`` at block ``layer``.

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
                    if values is not None:
                        h = A.resid(arch, A.blocks(arch, lm.nn)[layer].output)  # [batch, pos, d_model]
                        if delta_last is not None:
                            h[:, -1] += delta_last
                        elif t == 0:
                            h[:] += delta_prompt
                    if t == 0:
                        first_logits.append(A.unembed(arch, lm.nn).output[:, -1].save())  # [batch, d_vocab]
                    progress((t + 1) / n, f"token {t + 1}/{n}")
                out = tracer.result.save()  # [batch, pos + k]
        ids = out
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], k)], dim=1)
        done += k
    return ids[:, -n:].cpu(), first_logits[0].float().cpu()


def next_token_change(lm: LoadedModel, before: torch.Tensor, after: torch.Tensor, k: int = N_CHANGES) -> NextTokenChange:
    """Compare two next-token distributions given as logits ``[d_vocab]``."""
    logp_b = torch.log_softmax(before.float(), -1)
    logp_a = torch.log_softmax(after.float(), -1)
    p_b, p_a = logp_b.exp(), logp_a.exp()
    kl = float((p_a * (logp_a - logp_b)).sum().clamp_min(0.0))
    diff = p_a - p_b

    def listed(order: torch.Tensor, sign: float) -> list[tuple[str, float, float]]:
        out = []
        for i in order.tolist():
            if sign * float(diff[i]) <= 0:
                break
            out.append((lm.tokenizer.decode([i]), float(p_b[i]), float(p_a[i])))
        return out

    k = min(k, diff.numel())
    return NextTokenChange(
        rose=listed(diff.topk(k).indices, 1.0), fell=listed((-diff).topk(k).indices, -1.0), kl=kl
    )


def first_divergence(a: str, b: str) -> int | None:
    """Index of the first differing character (the shorter length if one is a prefix)."""
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


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
) -> list[PairResult]:
    """Unsteered and steered continuations of ``prompts``, from one batched ``generate``.

    ``vector``: ``[d_model]`` (``"last"``) or ``[n_pos, d_model]`` (``"prompt"``), or ``None``
    for no steering (the steered column then repeats the unsteered one). With ``sample=False``
    decoding is greedy and each list holds one continuation; with ``sample=True`` it holds
    ``n_samples``, drawn with the same random numbers in both columns.
    """
    progress = progress or _noop
    mode = _check_mode(mode)
    prompts = _check_prompts(prompts)
    layer = _check_layer(lm, layer)
    coeff = _check_coeff(coeff)
    max_new_tokens = _check_max_new_tokens(max_new_tokens)
    decoding = Decoding(bool(sample), temperature, top_p, repetition_penalty, n_samples, seed).checked()
    values = _vector_values(lm, vector, mode) if vector is not None else None

    n_rep = decoding.n_rows_per_prompt
    rows = [p for p in prompts for _ in range(n_rep)]  # prompt-major, sample-minor
    n_cols = 1 if values is None else 2  # [unsteered..., steered...]
    enc = encode(lm, rows * n_cols)
    row_coeffs = torch.tensor([0.0] * len(rows) + [coeff] * len(rows) * (n_cols - 1))
    sample_index = torch.arange(len(rows) * n_cols) % n_rep
    new_ids, logits = _steered_generate(
        lm, enc, row_coeffs, values, layer, mode, max_new_tokens, decoding, sample_index, progress
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


def _space_id(lm: LoadedModel) -> int:
    ids = lm.tokenizer(" ", add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    if lm.tokenizer.pad_token_id is not None:  # a tokenizer that cannot write a lone space
        return int(lm.tokenizer.pad_token_id)
    raise UserInputError("This tokenizer has no single token for a space to align the two prompts with.")


def actadd_vector(lm: LoadedModel, positive: str, negative: str, layer: int) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """Activation-addition vector (Turner et al. 2023): ``[n_pos, d_model]`` and the aligned tokens.

    Both prompts are tokenized; the shorter is padded at the END with space tokens to the
    longer's length (as in the paper), both run in one forward, and the outputs of block
    ``layer`` are subtracted position by position (positive - negative).
    """
    positive = _check_text(positive, "positive prompt")
    negative = _check_text(negative, "negative prompt")
    layer = _check_layer(lm, layer)
    ids = [lm.tokenizer(t)["input_ids"] for t in (positive, negative)]
    if not all(ids):
        raise UserInputError("A prompt is empty after tokenization.")
    width = max(len(i) for i in ids)
    if width > limits.MAX_PROMPT_TOKENS:
        raise UserInputError(f"A prompt has {width} tokens; the limit is {limits.MAX_PROMPT_TOKENS}.")
    space = _space_id(lm)
    padded = [row + [space] * (width - len(row)) for row in ids]
    input_ids = torch.tensor(padded, device=lm.device)  # [2, pos]
    arch = lm.arch
    with lm.locked(), torch.no_grad():
        with lm.trace(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)):
            h = A.resid(arch, A.blocks(arch, lm.nn)[layer].output).save()  # [2, pos, d_model]
    h = h.float().cpu()
    values = h[0] - h[1]  # [n_pos, d_model]
    tokens = [(lm.tokenizer.decode([p]), lm.tokenizer.decode([q])) for p, q in zip(*padded)]
    return values, tokens


def caa_vectors(lm: LoadedModel, pairs: Sequence[tuple[str, str]], progress: Progress | None = None) -> torch.Tensor:
    """Contrastive activation addition (Rimsky et al. 2023): ``[n_layers, d_model]``.

    For every layer, the mean over pairs of (positive - negative) block output at each prompt's
    last token. Two batched forwards (positives, then negatives), chunked by ``run_forward``.
    """
    progress = progress or _noop
    pairs = list(pairs or [])
    if not 1 <= len(pairs) <= limits.MAX_CAA_PAIRS:
        raise UserInputError(f"Give 1 to {limits.MAX_CAA_PAIRS} contrastive pairs (got {len(pairs)}).")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise UserInputError(f"Pair {i + 1} must be (positive, negative).")
        _check_text(pair[0], f"positive text of pair {i + 1}")
        _check_text(pair[1], f"negative text of pair {i + 1}")
    pos = run_forward(
        lm, encode(lm, [p for p, _ in pairs]), save_resid=True,
        progress=lambda f, m: progress(0.5 * f, f"positives: {m}"),
    )
    neg = run_forward(
        lm, encode(lm, [q for _, q in pairs]), save_resid=True,
        progress=lambda f, m: progress(0.5 + 0.5 * f, f"negatives: {m}"),
    )
    return (pos.resid - neg.resid).mean(1)  # [n_layers, batch, d_model] -> [n_layers, d_model]


def resid_norms(lm: LoadedModel, prompts: Sequence[str]) -> torch.Tensor:
    """``[n_layers]``: mean over prompts of the last-token block-output norm, a scale for coefficients."""
    prompts = list(prompts or [])
    if not prompts:
        raise UserInputError("No prompts to measure the residual stream on.")
    if len(prompts) > limits.MAX_N_PROMPTS:
        raise UserInputError(f"Use at most {limits.MAX_N_PROMPTS} prompts.")
    for p in prompts:
        _check_text(p, "prompt")
    fwd = run_forward(lm, encode(lm, prompts), save_resid=True)
    return fwd.resid.norm(dim=-1).mean(1)  # [n_layers, batch, d_model] -> [n_layers]


def keyword_hit_rate(text: str, keywords: Sequence[str]) -> float:
    """Fraction of ``keywords`` that occur in ``text`` as whole words (case-insensitive)."""
    if not keywords:
        return 0.0
    hits = sum(bool(re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE)) for k in keywords)
    return hits / len(keywords)


def sweep(
    lm: LoadedModel,
    prompt: str,
    vector: torch.Tensor,
    layers: list[int],
    coeffs: list[float],
    mode: Mode,
    max_new_tokens: int = 20,
    target_word: str | None = None,
    keywords: list[str] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Greedy steered continuations of one prompt over a grid of layers x coefficients.

    One ``generate`` per layer, its rows the coefficients (per-row coefficient; the first call
    also carries an unsteered row). Returns::

        texts   [n_coeffs][n_layers] continuations
        scores  [n_coeffs][n_layers] p(target_word's first token, with a leading space) at the
                first generated step if ``target_word``, else the keyword hit rate if
                ``keywords``, else None
        baseline_text / baseline_score: the unsteered continuation and its score
    """
    progress = progress or _noop
    mode = _check_mode(mode)
    prompt = _check_text(prompt, "prompt")
    max_new_tokens = _check_max_new_tokens(max_new_tokens)
    layers = [_check_layer(lm, l) for l in (layers or [])]
    coeffs = [_check_coeff(c) for c in (coeffs or [])]
    if not layers or not coeffs:
        raise UserInputError("Pick at least one layer and one coefficient to sweep.")
    if len(layers) > MAX_SWEEP_LAYERS or len(layers) * len(coeffs) > MAX_SWEEP_CELLS:
        raise UserInputError(
            f"The grid is too large: at most {MAX_SWEEP_LAYERS} layers and {MAX_SWEEP_CELLS} cells "
            f"(got {len(layers)} x {len(coeffs)})."
        )
    values = _vector_values(lm, vector, mode)
    target_id: int | None = None
    score_name: str | None = None
    if target_word is not None and target_word.strip():
        target = " " + target_word.strip()
        target_id = int(first_token_ids(lm, [target])[0])
        score_name = f"p({lm.tokenizer.decode([target_id])!r}) at the first new token"
    keywords = [k.strip() for k in (keywords or []) if k and k.strip()]
    if target_id is None and keywords:
        score_name = "keyword hit rate"

    def score(text: str, logits: torch.Tensor) -> float | None:
        if target_id is not None:
            return float(torch.softmax(logits.float(), -1)[target_id])
        if keywords:
            return keyword_hit_rate(text, keywords)
        return None

    texts: list[list[str]] = [[""] * len(layers) for _ in coeffs]
    scores: list[list[float | None]] = [[None] * len(layers) for _ in coeffs]
    baseline_text, baseline_score = "", None
    decoding = Decoding()
    # each layer's generation takes its own turns on the model
    for li, layer in enumerate(layers):
        row_coeffs = list(coeffs) + ([0.0] if li == 0 else [])  # the last row is the baseline
        enc = encode(lm, [prompt] * len(row_coeffs))

        def step_progress(f: float, m: str, li: int = li) -> None:
            progress((li + f) / len(layers), f"layer {layer} ({li + 1}/{len(layers)}): {m}")

        new_ids, logits = _steered_generate(
            lm, enc, torch.tensor(row_coeffs), values, layer, mode, max_new_tokens,
            decoding, torch.zeros(len(row_coeffs), dtype=torch.long), step_progress,
        )
        row_texts = _decode(lm, new_ids)
        for ci in range(len(coeffs)):
            texts[ci][li] = row_texts[ci]
            scores[ci][li] = score(row_texts[ci], logits[ci])
        if li == 0:
            baseline_text, baseline_score = row_texts[-1], score(row_texts[-1], logits[-1])
    return {
        "prompt": prompt,
        "mode": mode,
        "layers": layers,
        "coeffs": coeffs,
        "texts": texts,
        "scores": scores if score_name else None,
        "score_name": score_name,
        "baseline_text": baseline_text,
        "baseline_score": baseline_score,
    }


# --- export -----------------------------------------------------------------------------------

_SCRIPT = '''"""Steered generation exported from FV Studio.

Adds COEFF * vector to the output of decoder block LAYER, {mode_doc},
and prints the unsteered and steered greedy continuations. Needs torch, transformers, nnsight 0.8 and
safetensors; the model must be a local folder or reachable on the Hugging Face hub.
"""

import torch
from nnsight.modeling.transformers import TransformersModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL = {model!r}{model_comment}
VECTOR = {vector_path!r}
LAYER = {layer!r}
COEFF = {coeff!r}
MODE = {mode!r}  # "last": every new token; "prompt": the prompt's first positions, once
PROMPT = {prompt!r}
MAX_NEW_TOKENS = {max_new_tokens!r}

# where each architecture keeps its decoder blocks (from FV Studio's core/arch.py)
BLOCKS = {blocks!r}
TUPLE_OUTPUT = {tuple_families!r}  # model types whose blocks return (hidden, ...)


def get_path(root, path):
    for part in path.split("."):
        root = getattr(root, part)
    return root


tokenizer = AutoTokenizer.from_pretrained(MODEL)
hf = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
model = TransformersModel(hf, tokenizer=tokenizer)
model_type = hf.config.model_type
if model_type not in BLOCKS:
    raise SystemExit(f"unsupported model type {{model_type}}")
values = load_file(VECTOR)["vector"].float()  # [d_model] or [n_pos, d_model]
if values.dim() == 1:
    values = values[None]
if values.shape[-1] != hf.config.hidden_size:
    raise SystemExit("the vector does not match this model's width")
n_prompt = len(tokenizer(PROMPT)["input_ids"])
k = min(values.shape[0], n_prompt)
eos = hf.generation_config.eos_token_id
eos = set(eos if isinstance(eos, (list, tuple)) else [eos if eos is not None else tokenizer.eos_token_id])


def generate(coeff):
    delta = (coeff * values).to(hf.dtype)
    with model.generate(PROMPT, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=None) as tracer:
        for step in tracer.iter[:MAX_NEW_TOKENS]:
            out = get_path(model, BLOCKS[model_type])[LAYER].output
            h = out[0] if model_type in TUPLE_OUTPUT else out  # [batch, pos, d_model]
            if MODE == "last":
                h[:, -1] += delta[0]
            elif step == 0:
                h[:, :k] += delta[:k]
        ids = tracer.result.save()
    new = ids[0, n_prompt:].tolist()
    cut = next((i for i, t in enumerate(new) if t in eos), len(new))
    return tokenizer.decode(new[:cut], skip_special_tokens=True)


print("UNSTEERED:", repr(generate(0.0)))
print("STEERED:  ", repr(generate(COEFF)))
'''


def export_script(
    model_id: str,
    vector_path: str,
    layer: int,
    coeff: float,
    mode: Mode,
    prompt: str,
    max_new_tokens: int,
) -> str:
    """A standalone nnsight script that reproduces a steered greedy generation.

    The vector file is the safetensors file FV Studio saves (tensor ``"vector"``). The default
    model is written as its local fp32 folder; every value is embedded with ``repr``.
    """
    mode = _check_mode(mode)
    coeff = _check_coeff(coeff)
    max_new_tokens = _check_max_new_tokens(max_new_tokens)
    prompt = _check_text(prompt, "prompt")
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise UserInputError(f"The layer must be a whole number from 0 (got {layer!r}).")
    model_comment = ""
    model = str(model_id)
    if model_id == DEFAULT_MODEL:
        model = str(default_model_dir())
        model_comment = (
            "  # FV Studio's fp32 copy of the Q4_1 GGUF; the original weights are\n"
            "# HuggingFaceTB/SmolLM2-135M-Instruct on the hub (results differ slightly)"
        )
    # the script cannot import core: it carries the block paths of every supported model type
    # (core.arch has no public accessor for its layout table yet)
    blocks = {model_type: layout[1] for model_type, layout in sorted(A._LAYOUTS.items())}
    tuple_types = sorted(t for t, layout in A._LAYOUTS.items() if layout[0] == "gptj")
    return _SCRIPT.format(
        mode_doc="at every new token" if mode == "last" else "at the prompt's first positions, once",
        model=model,
        model_comment=model_comment,
        vector_path=str(vector_path),
        layer=int(layer),
        coeff=float(coeff),
        mode=mode,
        prompt=prompt,
        max_new_tokens=int(max_new_tokens),
        blocks=blocks,
        tuple_families=tuple_types,
    )
