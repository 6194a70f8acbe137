"""``steer``: an unsteered and a steered generation, with a saved vector or an activation-addition
pair; and where ``--save`` writes a vector."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import file_error, int_arg, model_of
from core.errors import UserInputError
from core.files import check_writable


def save_target(args: argparse.Namespace) -> tuple[Path, str]:
    """``--save FILE``: the path and the vector's name (the file's stem), checked before any work.

    The name goes into the file's header, and a name that loads refuse would make a file
    nobody can use; the file and its ``.json`` sidecar must not be ``--out``'s file.
    """
    from core.vectors import check_name, sidecar_path

    path = Path(args.save_path)
    name = path.stem.replace(".", "_") or "fv"
    try:
        name = check_name(name)
    except UserInputError as exc:
        raise UserInputError(f"--save {args.save_path}: the vector is named after the file. {exc}") from None
    try:
        sidecar = sidecar_path(path)
    except UserInputError as exc:
        raise UserInputError(f"--save: {exc}") from None
    if args.out and Path(args.out).resolve() in (path.resolve(), sidecar.resolve()):
        raise UserInputError(f"--out {args.out} and --save {args.save_path} would write the same file.")
    for target in (path, sidecar):
        try:
            check_writable(target)
        except OSError as exc:
            raise file_error("--save", str(target), exc) from None
    return path, name


def decoding_of(args: argparse.Namespace):
    """The decoding settings of ``steer`` (greedy unless ``--sample``), checked as the app checks them."""
    from core.steer import Decoding

    return Decoding(
        sample=bool(args.sample),
        temperature=float(getattr(args, "temperature", 1.0)),
        top_p=float(getattr(args, "top_p", 1.0)),
        repetition_penalty=float(getattr(args, "repetition_penalty", 1.0)),
        n_samples=int(getattr(args, "n_samples", 1)),
        seed=int(args.seed),
    ).checked()


def _read_vector(args: argparse.Namespace, d_model: int | None = None):
    from core.vectors import from_bytes

    try:
        data = Path(args.vector).read_bytes()
    except OSError as exc:
        raise file_error("--vector", args.vector, exc, reading=True) from None
    return from_bytes(data, args.model, d_model, source=args.vector)  # format, model (and width)


def cmd_steer(args: argparse.Namespace) -> dict:
    """Unsteered and steered continuations of ``--prompt`` (:func:`core.steer.generate_pair`).

    JSON: ``model``, ``prompt``, ``unsteered`` and ``steered`` (the first sample),
    ``first_divergence``, ``next_token_change`` (``kl`` in nats, ``rose``/``fell``:
    ``[token, p unsteered, p steered]``), ``settings``, ``vector`` and ``results`` (every
    sample). ``--script FILE`` writes a script that prints the same (:func:`steer_script_for`).
    """
    from core import checks, steer
    from core.steering_vectors import actadd_vector

    # everything that needs no model is checked before the (slow) load
    checks.check_text(args.prompt, "prompt")
    checks.check_coeff(args.coeff)
    checks.check_max_new_tokens(args.max_new_tokens)
    decoding = decoding_of(args)
    given_layer = int_arg(args.layer, "--layer") if args.layer not in (None, "auto") else None
    if args.vector:
        _read_vector(args)
    elif args.positive is None or args.negative is None:
        raise UserInputError("Give --vector FILE, or both --positive TEXT and --negative TEXT.")
    lm = model_of(args)
    meta: dict[str, Any]
    if args.vector:
        vec = _read_vector(args, lm.arch.d_model)
        values, layer, meta = vec.values, vec.layer, vec.metadata()
    else:
        layer = given_layer if given_layer is not None else 6
        values, aligned = actadd_vector(lm, args.positive, args.negative, layer)
        meta = {
            "method": "actadd",
            "positive": args.positive,
            "negative": args.negative,
            "aligned_tokens": [list(pair) for pair in aligned],
        }
    if given_layer is not None:
        layer = given_layer
    mode = args.mode or ("prompt" if values.dim() == 2 else "last")
    results = steer.generate_pair(
        lm,
        [args.prompt],
        values,
        layer=layer,
        coeff=args.coeff,
        mode=mode,
        max_new_tokens=args.max_new_tokens,
        **decoding.kwargs(),
    )
    return steer_json(lm.model_id, results, layer, args.coeff, mode, args.max_new_tokens, decoding, meta)


def steer_json(
    model_id: str,
    results: list[Any],
    layer: int,
    coeff: float,
    mode: str,
    max_new_tokens: int,
    decoding: Any,
    vector: dict[str, Any],
) -> dict[str, Any]:
    """The JSON of ``steer`` (and of a steering script) for :func:`core.steer.generate_pair`'s
    ``results``: the first prompt's first sample at the top level, every sample in ``results``."""
    rows = [pair_json(r) for r in results]
    return {
        "model": model_id,
        "prompt": rows[0]["prompt"],
        "unsteered": rows[0]["unsteered"][0],
        "steered": rows[0]["steered"][0],
        "first_divergence": rows[0]["first_divergence"],
        "next_token_change": rows[0]["next_token_change"],
        "settings": {
            "layer": layer,
            "coeff": coeff,
            "mode": mode,
            "max_new_tokens": max_new_tokens,
            "seed": decoding.seed,
            "sample": decoding.sample,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "repetition_penalty": decoding.repetition_penalty,
            "n_samples": decoding.n_samples,
        },
        "vector": vector,
        "results": rows,
    }


def pair_json(r: Any) -> dict[str, Any]:
    """One :class:`core.steer.PairResult` as JSON (the keys a steering script prints)."""
    change = r.next_token_change
    return {
        "prompt": r.prompt,
        "unsteered": list(r.unsteered),
        "steered": list(r.steered),
        "first_divergence": r.first_divergence,
        "next_token_change": {
            "kl": change.kl,
            "rose": [list(t) for t in change.rose],
            "fell": [list(t) for t in change.fell],
        },
        "n_steered_positions": r.n_steered_positions,
    }


def steer_script_for(args: argparse.Namespace, result: dict) -> str:
    """``steer --script FILE``: the script that reproduces ``result`` (no model work). A
    ``--vector`` file is inlined (its exact values); an activation-addition pair is rebuilt
    in the script from its two prompts."""
    from core.models import ModelSpec
    from core.scripts.steering import steer_script
    from core.scripts.steering_vectors import ActAddSource, InlineVector, VectorSource

    spec = ModelSpec(model_id=args.model, dtype=args.dtype, device=args.device)
    settings = result["settings"]
    source: VectorSource
    if args.vector:
        vec = _read_vector(args)
        source = InlineVector(vec.values, result["vector"], f"the vector {vec.name!r}")
    else:
        source = ActAddSource(args.positive, args.negative)
    return steer_script(
        spec,
        [args.prompt],
        source,
        int(settings["layer"]),
        float(settings["coeff"]),
        settings["mode"],
        int(settings["max_new_tokens"]),
        decoding_of(args),
    )
