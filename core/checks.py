"""Every check of a value a person chooses: layers, heads, coefficients, token counts, texts,
prompts, contrastive pairs, steering vectors, decoding settings and sweep grids.

One function per kind of value and one message per mistake, so the pages (through ``core``),
the CLI and a notebook all say the same thing about the same mistake. Each function returns
the value it checked (normalised: ``int``, ``float``, a list) or raises
:class:`core.errors.UserInputError`. Limits are read from :mod:`core.limits` at call time, so
the numbers in the messages are always the ones enforced.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from core import limits
from core.errors import UserInputError
from core.vectors import Vector

if TYPE_CHECKING:
    from core.models import LoadedModel

MODES: tuple[str, ...] = ("last", "prompt")  # where a steering vector is added (core.steer)
CORRUPTIONS: tuple[str, ...] = ("shuffle", "random")  # how corrupted prompts break labels (core.prompts)


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- layers and heads -------------------------------------------------------------------------


def check_layer(layer: Any, n_layers: int | None = None) -> int:
    """A block index, ``0 <= layer < n_layers`` (only ``>= 0`` when the model is not known yet)."""
    if not _is_whole(layer):
        raise UserInputError(f"The layer must be a whole number, not {layer!r}.")
    layer = int(layer)
    if layer < 0 or (n_layers is not None and layer >= n_layers):
        where = f"this model has layers 0..{n_layers - 1}" if n_layers is not None else "layers are numbered from 0"
        raise UserInputError(f"Layer {layer} is out of range: {where}.")
    return layer


def check_heads(lm: LoadedModel | None, heads: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(layer, head)`` pairs, at least one; duplicates dropped, order kept. With the model,
    each must be one of its heads (``lm=None``: the model is not loaded yet)."""
    if not heads:
        raise UserInputError("No heads selected: pick at least one head to build a function vector.")
    if lm is None:
        return list(dict.fromkeys((int(l), int(h)) for l, h in heads))
    n_layers, n_heads = lm.arch.n_layers, lm.arch.n_heads
    out = []
    for l, h in heads:
        if not 0 <= l < n_layers or not 0 <= h < n_heads:
            raise UserInputError(f"Head {l}.{h} is out of range (layers 0..{n_layers - 1}, heads 0..{n_heads - 1}).")
        out.append((int(l), int(h)))
    return list(dict.fromkeys(out))


def check_n_heads(n: Any, lm: LoadedModel) -> int:
    """How many top heads to use: from 1 to every head of the model."""
    total = lm.arch.n_layers * lm.arch.n_heads
    if not _is_whole(n) or not 1 <= n <= total:
        raise UserInputError(f"The number of heads must be a whole number from 1 to {total} (got {n!r}).")
    return int(n)


# --- coefficients -----------------------------------------------------------------------------


def check_coeff(coeff: Any) -> float:
    """A steering coefficient: a finite number of at most ``limits.MAX_ABS_COEFF`` in size."""
    if not _is_real(coeff):
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


def parse_coeffs(text: str, max_n: int) -> list[float]:
    """Coefficients typed as ``"1, 4, 8"`` (commas or spaces), each checked, at most ``max_n``."""
    try:
        values = [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]
    except ValueError:
        raise UserInputError(
            f"Coefficients must be numbers separated by commas, like `1, 4, 8` (got `{text[:40]}`)."
        ) from None
    if not values:
        raise UserInputError("Give at least one coefficient, like `1, 4, 8`.")
    if len(values) > max_n:
        raise UserInputError(f"At most {max_n} coefficients in one sweep (got {len(values)}).")
    return [check_coeff(c) for c in values]


def check_sweep_grid(layers: Sequence[Any], coeffs: Sequence[Any]) -> None:
    """A layer x coefficient grid: not empty, within ``limits.MAX_SWEEP_LAYERS`` and
    ``limits.MAX_SWEEP_CELLS`` as a whole."""
    if not layers or not coeffs:
        raise UserInputError("Pick at least one layer and one coefficient to sweep.")
    if len(layers) > limits.MAX_SWEEP_LAYERS or len(layers) * len(coeffs) > limits.MAX_SWEEP_CELLS:
        raise UserInputError(
            f"The grid is too large: at most {limits.MAX_SWEEP_LAYERS} layers and {limits.MAX_SWEEP_CELLS} cells "
            f"(got {len(layers)} x {len(coeffs)})."
        )


# --- token counts, texts, prompts, pairs ------------------------------------------------------


def check_max_new_tokens(n: Any) -> int:
    if not _is_whole(n) or not 1 <= n <= limits.MAX_NEW_TOKENS:
        raise UserInputError(f"New tokens must be a whole number from 1 to {limits.MAX_NEW_TOKENS} (got {n!r}).")
    return int(n)


def check_prompt_tokens(n_tokens: int) -> int:
    """The length in tokens of one prompt (or one vector's positions, one per token)."""
    if n_tokens > limits.MAX_PROMPT_TOKENS:
        raise UserInputError(f"A prompt has {n_tokens} tokens; the limit is {limits.MAX_PROMPT_TOKENS}.")
    return n_tokens


def check_text(text: Any, what: str) -> str:
    """Free text that is not blank and at most ``limits.MAX_PROMPT_CHARS`` long; ``what`` names
    it in the message ("prompt", "positive prompt", ...)."""
    if not isinstance(text, str) or not text.strip():
        raise UserInputError(f"The {what} is empty: type some text.")
    if len(text) > limits.MAX_PROMPT_CHARS:
        raise UserInputError(f"The {what} has {len(text)} characters; the limit is {limits.MAX_PROMPT_CHARS}.")
    return text


def check_prompts(prompts: Any, max_n: int | None = None) -> list[str]:
    """One prompt or a list of them: 1 to ``max_n`` (default ``limits.MAX_PROMPTS``), each checked."""
    max_n = limits.MAX_PROMPTS if max_n is None else max_n
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts or [])
    if not prompts:
        raise UserInputError("No prompts: type at least one prompt.")
    if len(prompts) > max_n:
        raise UserInputError(f"{len(prompts)} prompts is too many: use at most {max_n} at once.")
    for i, p in enumerate(prompts):
        check_text(p, f"prompt {i + 1}" if len(prompts) > 1 else "prompt")
    return prompts


def check_pairs(pairs: Any) -> list[tuple[str, str]]:
    """Contrastive ``(positive, negative)`` pairs: 1 to ``limits.MAX_CAA_PAIRS``, each text checked."""
    pairs = list(pairs or [])
    if not 1 <= len(pairs) <= limits.MAX_CAA_PAIRS:
        raise UserInputError(f"Give 1 to {limits.MAX_CAA_PAIRS} contrastive pairs (got {len(pairs)}).")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise UserInputError(f"Pair {i + 1} must be (positive, negative).")
        check_text(pair[0], f"positive text of pair {i + 1}")
        check_text(pair[1], f"negative text of pair {i + 1}")
    return [(p, q) for p, q in pairs]


def check_task_names(names: Sequence[str]) -> list[str]:
    """Tasks to compare: 2 to ``limits.MAX_COMPARE_TASKS``, no name twice (results are labelled by name)."""
    names = list(names)
    if not 2 <= len(names) <= limits.MAX_COMPARE_TASKS:
        raise UserInputError(f"Compare 2 to {limits.MAX_COMPARE_TASKS} tasks (got {len(names)}).")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserInputError(f"The task '{twice[0]}' is listed twice: give each task once (names must differ).")
    return names


def check_corruption(corruption: Any) -> str:
    """How corrupted prompts break the demos' labels: ``"shuffle"`` or ``"random"``."""
    if corruption not in CORRUPTIONS:
        raise UserInputError(
            f"Unknown corruption {corruption!r}: choose 'shuffle' (labels shuffled among the demos) "
            "or 'random' (each label replaced by another output of the task)."
        )
    return corruption


def check_description(text: Any) -> str:
    """A one-line description of a task for a language model to write pairs for (core.llm_pairs)."""
    if not isinstance(text, str) or not text.strip():
        raise UserInputError("The task description is empty: describe the task, e.g. 'adjective -> its comparative'.")
    text = text.strip()
    if "\n" in text:
        raise UserInputError("The task description spans several lines: describe the task in one line.")
    if len(text) > limits.MAX_DESCRIPTION_CHARS:
        raise UserInputError(
            f"The task description has {len(text)} characters; the limit is {limits.MAX_DESCRIPTION_CHARS}."
        )
    return text


def check_n_written_pairs(n: Any) -> int:
    """How many pairs to ask a language model for: ``limits.MIN_PAIRS`` to ``limits.MAX_WRITTEN_PAIRS``."""
    if not _is_whole(n) or not limits.MIN_PAIRS <= n <= limits.MAX_WRITTEN_PAIRS:
        raise UserInputError(
            f"The number of pairs must be a whole number from {limits.MIN_PAIRS} to {limits.MAX_WRITTEN_PAIRS} (got {n!r})."
        )
    return int(n)


# --- steering vectors and decoding ------------------------------------------------------------


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise UserInputError(f"Unknown steering mode '{mode}'. Choose 'last' or 'prompt'.")
    return mode


def check_vector(lm: LoadedModel, vector: Any, mode: str) -> torch.Tensor:
    """A steering vector for this model as float ``[n_pos, d_model]`` on the CPU.

    ``vector``: a :class:`core.vectors.Vector` (made for this model) or a tensor ``[d_model]``
    or ``[n_pos, d_model]``; ``n_pos`` must be 1 in the ``"last"`` mode.
    """
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


def check_n_samples(n: Any) -> int:
    if not _is_whole(n) or not 1 <= n <= limits.MAX_SAMPLES:
        raise UserInputError(f"Samples per prompt must be a whole number from 1 to {limits.MAX_SAMPLES}.")
    return int(n)


def check_setting(name: str, value: Any, low: float, high: float) -> float:
    """A decoding setting in ``(low, high]``: temperature, top-p, repetition penalty."""
    if not _is_real(value) or not math.isfinite(value):
        raise UserInputError(f"The {name} must be a finite number.")
    if not low < value <= high:
        raise UserInputError(f"The {name} must be above {low:g} and at most {high:g} (got {value:g}).")
    return float(value)


def check_seed(seed: Any) -> int:
    if not _is_whole(seed) or not 0 <= seed < 2**63:
        raise UserInputError("The seed must be a whole number from 0 to 2^63 - 1.")
    return int(seed)


# --- values typed as text: a shareable link's query parameters (dashboard.links) -------------


def parse_whole(text: str, what: str, low: int, high: int) -> int:
    """A whole number written as text (``"10"``), from ``low`` to ``high``."""
    try:
        value = int(text.strip())
    except ValueError:
        raise UserInputError(f"The {what} must be a whole number from {low} to {high} (got '{text[:40]}').") from None
    if not low <= value <= high:
        raise UserInputError(f"The {what} must be a whole number from {low} to {high} (got {value}).")
    return value


def parse_number(text: str, what: str, low: float, high: float) -> float:
    """A finite number written as text (``"2.5"``), from ``low`` to ``high``."""
    try:
        value = float(text.strip())
    except ValueError:
        raise UserInputError(f"The {what} must be a number from {low:g} to {high:g} (got '{text[:40]}').") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise UserInputError(f"The {what} must be a number from {low:g} to {high:g} (got {value:g}).")
    return value


def check_choice(value: str, what: str, options: Sequence[str]) -> str:
    """One of a fixed list of options (a metric, a steering mode, a decoding)."""
    if value not in options:
        raise UserInputError(f"Unknown {what} '{value[:40]}': choose one of {', '.join(options)}.")
    return value


def parse_heads(text: str) -> list[tuple[int, int]]:
    """Heads written as ``layer.head`` separated by commas (``"20.5,14.1"``); check them against
    a model with :func:`check_heads`."""
    heads = []
    for item in (x.strip() for x in text.split(",")):
        match = re.fullmatch(r"(\d{1,4})\.(\d{1,4})", item)
        if match is None:
            raise UserInputError(
                f"Heads are written layer.head separated by commas, like `20.5,14.1` (got '{item[:40]}')."
            )
        heads.append((int(match[1]), int(match[2])))
    return check_heads(None, heads)
