"""Steering vectors built from activations, without training.

- **Activation addition** (Turner et al. 2023, "Activation Addition: Steering Language Models
  Without Optimization"): run a positive and a negative prompt ("Love" / "Hate"), padded to
  the same length with spaces, and subtract the outputs of one decoder block position by
  position. The result ``[n_pos, d_model]`` is added to a new prompt's first positions
  (``core.steer``'s ``"prompt"`` mode). One forward reads any number of layers.
- **Contrastive activation addition** (Rimsky et al. 2023, "Steering Llama 2 via Contrastive
  Activation Addition"): for many (positive, negative) texts, the mean difference of the block
  outputs at each text's last token, at every layer: ``[n_layers, d_model]``, one vector per
  layer, added at the newest token on every step (the ``"last"`` mode).
- **Residual norms**: the typical size of the residual stream at each layer, the scale against
  which a coefficient times a vector's norm is read (:func:`relative_norm`).

The ``make_*`` functions wrap values read here into a :class:`core.vectors.Vector` with its
provenance; :func:`default_coeff` is the coefficient a vector is used with unless told.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from core import checks, limits
from core.errors import UserInputError
from core.inference import Progress, encode, no_progress, run_forward
from core.models import LoadedModel
from core.vectors import Vector, check_name


def space_id(lm: LoadedModel) -> int:
    """The token shorter prompts are padded with when several are aligned: a lone space, as in
    Turner et al. (the pad token for a tokenizer that cannot write one)."""
    ids = lm.tokenizer(" ", add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    if lm.tokenizer.pad_token_id is not None:  # a tokenizer that cannot write a lone space
        return int(lm.tokenizer.pad_token_id)
    raise UserInputError("This tokenizer has no single token for a space to align the prompts with.")


def aligned_block_outputs(
    lm: LoadedModel, ids: Sequence[Sequence[int]], layers: Sequence[int]
) -> tuple[list[list[int]], dict[int, torch.Tensor]]:
    """Token rows padded at the END with :func:`space_id` to the longest, run in one forward:
    ``(padded rows, {layer: block output [n_rows, pos, d_model]})``. Causal attention: the
    padding after a position never changes that position's activations."""
    width = checks.check_prompt_tokens(max(len(row) for row in ids))
    space = space_id(lm)
    padded = [list(row) + [space] * (width - len(row)) for row in ids]
    input_ids = torch.tensor(padded, device=lm.device)  # [n_rows, pos]
    saved: dict[int, torch.Tensor] = {}
    with lm.locked(), torch.no_grad():
        with lm.trace(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)):
            for layer in sorted(set(layers)):  # execution order
                saved[layer] = lm.arch.block_output(lm.nn, layer).save()  # [n_rows, pos, d_model]
    return padded, {layer: h.float().cpu() for layer, h in saved.items()}


def actadd_vectors(
    lm: LoadedModel, positive: str, negative: str, layers: Sequence[int]
) -> tuple[dict[int, torch.Tensor], list[tuple[str, str]]]:
    """Activation-addition vectors at several layers, from one forward.

    Returns ``{layer: [n_pos, d_model]}`` (in the order of ``layers``) and the aligned tokens
    ``[(positive token, negative token)] * n_pos``. Both prompts are tokenized; the shorter is
    padded at the END with space tokens to the longer's length (as in the paper), both run in
    one forward, and the outputs of each block in ``layers`` are subtracted position by
    position (positive - negative).
    """
    positive = checks.check_text(positive, "positive prompt")
    negative = checks.check_text(negative, "negative prompt")
    layers = [checks.check_layer(layer, lm.arch.n_layers) for layer in layers]
    if not layers:
        raise UserInputError("Pick at least one layer to build the vector at.")
    ids = [lm.tokenizer(t)["input_ids"] for t in (positive, negative)]
    if not all(ids):
        raise UserInputError("A prompt is empty after tokenization.")
    padded, saved = aligned_block_outputs(lm, ids, layers)
    values = {layer: saved[layer][0] - saved[layer][1] for layer in layers}  # [n_pos, d_model] each
    tokens = [(lm.tokenizer.decode([p]), lm.tokenizer.decode([q])) for p, q in zip(*padded)]
    return values, tokens


def actadd_vector(
    lm: LoadedModel, positive: str, negative: str, layer: int
) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """Activation-addition vector (Turner et al. 2023) at one layer: ``[n_pos, d_model]`` and the
    aligned tokens (see :func:`actadd_vectors`)."""
    values, tokens = actadd_vectors(lm, positive, negative, [layer])
    (only,) = values.values()
    return only, tokens


def caa_vectors(lm: LoadedModel, pairs: Sequence[tuple[str, str]], progress: Progress | None = None) -> torch.Tensor:
    """Contrastive activation addition (Rimsky et al. 2023): ``[n_layers, d_model]``.

    For every layer, the mean over pairs of (positive - negative) block output at each prompt's
    last token. Two batched forwards (positives, then negatives), chunked by ``run_forward``.
    """
    progress = progress or no_progress
    pairs = checks.check_pairs(pairs)
    pos = run_forward(
        lm,
        encode(lm, [p for p, _ in pairs]),
        save_resid=True,
        progress=lambda f, m: progress(0.5 * f, f"positives: {m}"),
    )
    neg = run_forward(
        lm,
        encode(lm, [q for _, q in pairs]),
        save_resid=True,
        progress=lambda f, m: progress(0.5 + 0.5 * f, f"negatives: {m}"),
    )
    return (pos.resid - neg.resid).mean(1)  # [n_layers, batch, d_model] -> [n_layers, d_model]


def resid_norms(lm: LoadedModel, prompts: Sequence[str]) -> torch.Tensor:
    """``[n_layers]``: mean over prompts of the last-token block-output norm, a scale for coefficients."""
    prompts = checks.check_prompts(prompts, max_n=limits.MAX_N_PROMPTS)
    fwd = run_forward(lm, encode(lm, prompts), save_resid=True)
    return fwd.resid.norm(dim=-1).mean(1)  # [n_layers, batch, d_model] -> [n_layers]


# ---- norms ---------------------------------------------------------------------------------


def row_norms(values: torch.Tensor) -> list[float]:
    """``[n] -> n`` norms: of each position of ``[n_pos, d_model]``, or each layer of
    ``[n_layers, d_model]``."""
    return values.float().norm(dim=-1).tolist()


def mean_norm(values: torch.Tensor) -> float:
    """The mean norm per position: ``[d_model]`` or ``[n_pos, d_model]`` -> one number."""
    return float(values.float().norm(dim=-1).mean())


def relative_norm(coeff: float, vector_norm: float, resid_norm: float) -> float:
    """``|coeff| x ‖v‖ / ‖residual‖``: how large the added vector is against the residual
    stream it is added to (``resid_norm``: :func:`resid_norms` at the layer)."""
    return abs(coeff) * vector_norm / float(resid_norm)


# ---- vectors with their provenance ------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text.strip().lower()).strip("_")[:20] or "x"


def make_actadd_vector(
    model_id: str,
    positive: str,
    negative: str,
    layer: int,
    values: torch.Tensor,
    aligned_tokens: Sequence[tuple[str, str]],
    coeff: float,
) -> Vector:
    """The activation-addition vector ``values`` (``[n_pos, d_model]``, from
    :func:`actadd_vectors` at ``layer``) as a :class:`Vector` named after its two prompts,
    with the suggested coefficient ``coeff`` in its provenance."""
    return Vector(
        values=values,
        model_id=model_id,
        layer=layer,
        method="actadd",
        name=check_name(f"actadd_{_slug(positive)}_{_slug(negative)}"[:64]),
        provenance={"positive": positive, "negative": negative, "aligned_tokens": list(aligned_tokens), "coeff": coeff},
    )


def make_caa_vector(model_id: str, pairs: Sequence[tuple[str, str]], layer: int, by_layer: torch.Tensor) -> Vector:
    """The CAA vector of ``layer`` from ``by_layer`` (``[n_layers, d_model]``, from
    :func:`caa_vectors` over ``pairs``), with the first pairs in its provenance."""
    return Vector(
        values=by_layer[layer].clone(),
        model_id=model_id,
        layer=layer,
        method="caa",
        name=f"caa_l{layer}",
        provenance={"n_pairs": len(pairs), "first_pairs": [list(pr) for pr in pairs[:5]]},
    )


def default_coeff(vector: Vector) -> float:
    """The coefficient a vector is used with unless told: the one saved with it (activation
    addition saves one) if it is a number within the limits, else 1 for function vectors and
    h-vectors (means of real activations: already at the residual stream's scale) and 4 for
    the rest."""
    coeff = vector.provenance.get("coeff")
    if isinstance(coeff, (int, float)) and not isinstance(coeff, bool) and abs(coeff) <= limits.MAX_ABS_COEFF:
        return float(coeff)
    return 1.0 if vector.method in ("function_vector", "h_vector") else 4.0
