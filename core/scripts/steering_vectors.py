"""Where a steering script's vector comes from: inlined, or rebuilt from its prompts.

Each source writes the source text that defines ``VECTORS`` (``{layer: float tensor
[n_pos, d_model]}``, on the CPU) and ``VECTOR_INFO`` (what the JSON says about the vector):

- :class:`InlineVector`: a vector the app holds (a saved file, a function vector, an
  h-vector): its float32 values written out exactly (the shortest decimal that reads back as
  the same float32), the same vector at every layer asked for.
- :class:`ActAddSource`: activation addition (Turner et al. 2023), as
  :func:`core.steering_vectors.actadd_vectors` builds it: both prompts tokenized, the shorter
  padded at the END with space tokens, one forward, the block outputs subtracted position by
  position. One vector per layer, all from the same forward.
- :class:`AdditionsSource`: a list of additions ``c_i * h(prompt_i)``, summed per layer, as
  :func:`core.additions.addition_sum` builds it (the course's ``+5 "Love "``, ``-5 "Hate"``).
- :class:`CAASource`: contrastive activation addition (Rimsky et al. 2023), as
  :func:`core.steering_vectors.caa_vectors`: the mean over pairs of (positive - negative)
  block output at each text's last token, at every layer.

Rebuilding shows the method; it gives the app's values up to float rounding (a different
batch split of the same forward), far inside the tests' 1e-4.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from core import checks
from core.errors import UserInputError
from core.models import ModelSpec
from core.scripts import common


def float32_literals(values: torch.Tensor) -> list[str]:
    """Each value of a float tensor as the shortest decimal that reads back as the same
    float32 (``torch.tensor(float(text), dtype=torch.float32)``); the rare value whose shortest
    form would round twice is written with all 17 digits of its double instead."""
    flat = values.detach().float().cpu().reshape(-1).numpy()
    texts = [str(x) for x in flat]  # numpy prints a float32 by its shortest unique decimal
    back = np.array([float(t) for t in texts], dtype=np.float64).astype(np.float32)
    for i in np.flatnonzero(back != flat):
        texts[i] = repr(float(flat[i]))
    return texts


def tensor_literal(values: torch.Tensor, indent: int = 4) -> str:
    """``torch.tensor([[...], ...])`` source for a ``[n_pos, d_model]`` (or ``[d_model]``)
    float tensor, exact in float32, wrapped at 100 columns."""
    rows = values[None] if values.dim() == 1 else values
    pad = " " * (indent + 4)
    body = []
    for row in rows:
        text = textwrap.fill(", ".join(float32_literals(row)), width=100, initial_indent=pad, subsequent_indent=pad)
        body.append(" " * indent + "[\n" + text + ",\n" + " " * indent + "],")
    return "torch.tensor(\n  [\n" + "\n".join(body) + "\n  ]\n)"


class VectorSource(Protocol):
    """Something that writes the script's ``VECTORS`` and ``VECTOR_INFO``."""

    def describe(self) -> str:
        """The vector in a few words, for the script's docstring."""
        ...

    def block(self, layers: Sequence[int]) -> str:
        """Source defining ``VECTORS = {layer: [n_pos, d_model]}`` for ``layers`` and ``VECTOR_INFO``."""
        ...


@dataclass(frozen=True)
class InlineVector:
    """A vector the app holds: ``values`` ``[d_model]`` or ``[n_pos, d_model]``; ``info``: what
    the JSON says about it (e.g. :meth:`core.vectors.Vector.metadata`)."""

    values: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "the vector"

    def describe(self) -> str:
        shape = "x".join(str(n) for n in self.values.shape)
        return f"{self.name} ({shape}, values written below)"

    def block(self, layers: Sequence[int]) -> str:
        values = self.values.detach().float()
        if values.dim() not in (1, 2) or not bool(torch.isfinite(values).all()):
            raise UserInputError("The steering vector must be finite, [d_model] or [n_pos, d_model].")
        return (
            f"# {self.describe()}: [n_pos, d_model], float32 values written out exactly\n"
            f"VECTOR = {tensor_literal(values)}\n"
            f"VECTORS = {{layer: VECTOR for layer in {common.literal(sorted(set(layers)))}}}\n"
            f"VECTOR_INFO = {common.literal(self.info)}"
        )


_ACTADD = """
# Activation addition (Turner et al. 2023): run both prompts, the shorter padded at the END
# with space tokens to the longer's length, in one forward; the vector is the difference of
# the residual streams position by position (positive - negative): [n_pos, d_model].
pair_ids = [model.tokenizer(text)["input_ids"] for text in (POSITIVE, NEGATIVE)]
space = model.tokenizer(" ", add_special_tokens=False)["input_ids"]
space = space[0] if len(space) == 1 else model.tokenizer.pad_token_id  # no lone space: pad
width = max(len(row) for row in pair_ids)
padded = [row + [space] * (width - len(row)) for row in pair_ids]
pair_input = torch.tensor(padded, device=hf.device)  # [2, pos]
saved = {}
with model.trace(input_ids=pair_input, attention_mask=torch.ones_like(pair_input)):
    for layer in sorted(set(VECTOR_LAYERS)):  # requests in execution order: earlier layers first
        saved[layer] = resid(layer).save()  # [2, pos, d_model]
VECTORS = {layer: saved[layer].float().cpu()[0] - saved[layer].float().cpu()[1] for layer in VECTOR_LAYERS}
ALIGNED = [[model.tokenizer.decode([p]), model.tokenizer.decode([q])] for p, q in zip(*padded)]
VECTOR_INFO = {"method": "actadd", "positive": POSITIVE, "negative": NEGATIVE, "aligned_tokens": ALIGNED}
"""


@dataclass(frozen=True)
class ActAddSource:
    """Activation addition from two prompts, rebuilt in the script at every layer asked for."""

    positive: str
    negative: str

    def describe(self) -> str:
        return f"the activation-addition vector {self.positive!r} - {self.negative!r}"

    def block(self, layers: Sequence[int]) -> str:
        positive = checks.check_text(self.positive, "positive prompt")
        negative = checks.check_text(self.negative, "negative prompt")
        return (
            f"POSITIVE = {positive!r}\nNEGATIVE = {negative!r}\n"
            f"VECTOR_LAYERS = {common.literal(sorted(set(layers)))}  # one vector per layer\n" + _ACTADD
        )


_ADDITIONS = """
# Activation addition from a list of additions, as the ARENA course writes it: each prompt
# tokenized (after the beginning-of-sequence token if PREPEND_BOS), the shorter ones padded at
# the END with space tokens, all in one forward; at each layer the vector is the sum of that
# layer's additions, sum_i c_i * h_i: [n_pos, d_model], n_pos its longest prompt (added with
# coefficient 1: the coefficients are inside the sums)
bos = model.tokenizer.bos_token_id
add_ids = []
for _, text, _ in ADDITIONS:
    row = model.tokenizer(text)["input_ids"]
    if PREPEND_BOS and bos is not None and (not row or row[0] != bos):
        row = [bos] + row
    add_ids.append(row)
space = model.tokenizer(" ", add_special_tokens=False)["input_ids"]
space = space[0] if len(space) == 1 else model.tokenizer.pad_token_id  # no lone space: pad
width = max(len(row) for row in add_ids)
padded = [row + [space] * (width - len(row)) for row in add_ids]
add_input = torch.tensor(padded, device=hf.device)  # [n_additions, pos]
add_layers = sorted({layer for _, _, layer in ADDITIONS})
saved = {}
with model.trace(input_ids=add_input, attention_mask=torch.ones_like(add_input)):
    for layer in add_layers:  # requests in execution order: earlier layers first
        saved[layer] = resid(layer).save()  # [n_additions, pos, d_model]
VECTORS, widths = {}, {}
for layer in add_layers:
    rows = [i for i, (_, _, at) in enumerate(ADDITIONS) if at == layer]
    widths[layer] = max(len(add_ids[i]) for i in rows)  # this layer's longest prompt
    coeffs = torch.tensor([ADDITIONS[i][0] for i in rows])  # [n_rows]
    h_rows = saved[layer].float().cpu()[rows, : widths[layer]]  # [n_rows, n_pos, d_model]
    VECTORS[layer] = (coeffs[:, None, None] * h_rows).sum(0)  # [n_pos, d_model]
VECTOR_INFO = {
    "method": "additions",
    "additions": ADDITIONS,
    "prepend_bos": PREPEND_BOS,
    "tokens": [[model.tokenizer.decode([t]) for t in row[: widths[at]]] for row, (_, _, at) in zip(padded, ADDITIONS)],
}
"""


@dataclass(frozen=True)
class AdditionsSource:
    """A list of additions ``(coefficient, prompt, layer)`` summed per layer (core.additions),
    rebuilt in the script; steer with it at coefficient 1 in the ``"prompt"`` mode at its first
    layer (the others are added at their own layers, as ``core.steer.generate_pair``'s ``more``)."""

    additions: tuple[tuple[float, str, int], ...]
    prepend_bos: bool = False

    def describe(self) -> str:
        terms = " ".join(f"{c:+g}*h({p!r})@{layer}" for c, p, layer in self.additions)
        return f"the sum of additions {terms}"

    def block(self, layers: Sequence[int]) -> str:
        if not self.additions:
            raise UserInputError("Add at least one prompt to the list of additions.")
        additions = [
            [checks.check_coeff(c), checks.check_text(p, "prompt of an addition"), checks.check_layer(layer)]
            for c, p, layer in self.additions
        ]
        first = min(a[2] for a in additions)
        if list(layers) != [first]:
            raise UserInputError(f"A list of additions is steered with at its first layer, {first}.")
        return (
            f"ADDITIONS = {common.literal(additions)}  # (coefficient, prompt, layer)\n"
            f"PREPEND_BOS = {bool(self.prepend_bos)!r}\n" + _ADDITIONS
        )


_CAA = '''

def last_token_resid(texts):
    """[n_layers, batch, d_model]: every block's output at each text's last token (the
    batch is left-padded, so position -1 is every row's last real token)."""
    saved = []
    with model.trace(texts):
        for layer in range(N_LAYERS):
            saved.append(resid(layer)[:, -1].save())
    return torch.stack([h.float().cpu() for h in saved])


# Contrastive activation addition (Rimsky et al. 2023): per layer, the mean over pairs of
# (positive - negative) residual stream at the last token: [n_layers, d_model]
positives = last_token_resid([p for p, _ in PAIRS])
negatives = last_token_resid([q for _, q in PAIRS])
BY_LAYER = (positives - negatives).mean(1)
VECTORS = {layer: BY_LAYER[layer][None] for layer in VECTOR_LAYERS}  # [1, d_model] each
VECTOR_INFO = {
    "method": "caa",
    "n_pairs": len(PAIRS),
    "norm_by_layer": BY_LAYER.norm(dim=-1).tolist(),
}
'''


@dataclass(frozen=True)
class CAASource:
    """Contrastive activation addition from (positive, negative) pairs, rebuilt in the script."""

    pairs: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        return f"the CAA vector of {len(self.pairs)} contrastive pairs"

    def block(self, layers: Sequence[int]) -> str:
        pairs = [list(p) for p in checks.check_pairs(list(self.pairs))]
        return (
            f"PAIRS = {common.literal(pairs)}  # (positive, negative)\n"
            f"VECTOR_LAYERS = {common.literal(sorted(set(layers)))}" + _CAA
        )


def vector_block(source: VectorSource, layers: Sequence[int]) -> str:
    """The source defining ``VECTORS`` for ``layers`` and ``VECTOR_INFO`` (see the module)."""
    if not layers:
        raise UserInputError("Pick at least one layer to build the vector at.")
    return source.block([int(layer) for layer in layers])


_BUILD_ACTADD = """
result = {
    "vector": VECTOR_INFO,
    "layers": VECTOR_LAYERS,
    # [n_layers][n_pos]: the norm of the difference at each position
    "norms": [VECTORS[layer].norm(dim=-1).tolist() for layer in VECTOR_LAYERS],
}
"""

_BUILD_CAA = """
result = {"vector": VECTOR_INFO, "layers": VECTOR_LAYERS, "norms": [BY_LAYER[layer].norm().item() for layer in VECTOR_LAYERS]}
"""


def build_script(spec: ModelSpec, source: ActAddSource | CAASource, layers: Sequence[int]) -> str:
    """A standalone script that builds the steering vector of ``source`` at ``layers``, as the
    Steering vectors page does, and prints it in numbers: ``vector`` (how it was made: the
    aligned tokens of activation addition; the norm at every layer for CAA), ``layers`` and
    ``norms`` (activation addition: per layer, each position's norm; CAA: each layer's norm)."""
    what = (
        f"Builds {source.describe()} from its prompts at layer(s) {sorted(set(layers))}, as FV Studio's Steering "
        "vectors page does, and prints how large it is."
    )
    return common.assemble(
        common.header("A steering vector from activations", what),
        common.load_block(spec),
        common.layout_block(),
        vector_block(source, layers),
        _BUILD_ACTADD if isinstance(source, ActAddSource) else _BUILD_CAA,
        common.print_block(),
    )
