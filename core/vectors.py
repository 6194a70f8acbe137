"""Steering vectors: one object for function vectors, h-vectors and activation-addition
vectors, with arithmetic, provenance, and safe files.

A vector is ``values`` (``[d_model]``, added at one position, or ``[n_pos, d_model]``, added
at a prompt's first positions as in activation addition) plus the model it belongs to, the
layer it is meant for, how it was made, and where it came from. Files are safetensors (the
tensor, with the metadata as JSON in the header) plus a ``.json`` sidecar for people to
read; nothing is ever unpickled.

Vectors saved for later live in a library of folders (:mod:`core.library`).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from core import limits
from core.errors import UserInputError
from core.files import write_atomic

METHODS = ("function_vector", "h_vector", "actadd", "caa", "combined")
FORMAT = "fv-studio-vector/1"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
MAX_HEADER_BYTES = 1024 * 1024  # a vector file's JSON header (its metadata) is far smaller


@dataclass(frozen=True)
class Vector:
    values: torch.Tensor  # [d_model] or [n_pos, d_model]
    model_id: str
    layer: int
    method: str
    name: str = "vector"
    provenance: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        # The name becomes a file name and is checked again when the file is read: a vector
        # whose name files cannot carry would be saved, then refused at every load.
        object.__setattr__(self, "name", check_name(self.name))

    @property
    def d_model(self) -> int:
        return int(self.values.shape[-1])

    @property
    def norm(self) -> float:
        return float(self.values.float().norm())

    def _check(self, other: Vector) -> None:
        if not isinstance(other, Vector):
            raise TypeError("vectors combine only with vectors (and scale by numbers)")
        if other.model_id != self.model_id:
            raise UserInputError(
                f"Cannot combine vectors of different models: '{self.model_id}' and '{other.model_id}'."
            )
        if other.values.shape != self.values.shape:
            raise UserInputError(
                f"Cannot combine vectors of different shapes: {tuple(self.values.shape)} and "
                f"{tuple(other.values.shape)}."
            )

    def _combined(self, values: torch.Tensor, recipe: str) -> Vector:
        return Vector(
            values=values,
            model_id=self.model_id,
            layer=self.layer,
            method="combined",
            name="combined",
            provenance={"recipe": recipe},
        )

    def __add__(self, other: Vector) -> Vector:
        self._check(other)
        return self._combined(self.values + other.values, f"{self.name} + {other.name}")

    def __sub__(self, other: Vector) -> Vector:
        self._check(other)
        return self._combined(self.values - other.values, f"{self.name} - {other.name}")

    def __mul__(self, scale: float) -> Vector:
        if not isinstance(scale, (int, float)):
            return NotImplemented
        return self._combined(self.values * float(scale), f"{scale} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> Vector:
        return self * -1.0

    def renamed(self, name: str) -> Vector:
        return replace(self, name=check_name(name))

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "model_id": self.model_id,
            "layer": self.layer,
            "method": self.method,
            "shape": list(self.values.shape),
            "norm": self.norm,
            "created": self.created,
            "provenance": self.provenance,
        }


def check_name(name: str) -> str:
    """``name`` without surrounding spaces, if it can name a vector file; else a clear error.

    Letters, digits, '_' and '-' only: a name is used as a file name, so no separators,
    dots or spaces.
    """
    if not isinstance(name, str):
        raise UserInputError(f"A vector name must be text (got {type(name).__name__}).")
    name = name.strip()
    if not NAME_RE.match(name):
        raise UserInputError(
            f"Invalid vector name '{name[:40]}': use letters, digits, '_' or '-', starting with a "
            "letter (at most 64 characters)."
        )
    return name


def to_bytes(vector: Vector) -> bytes:
    """safetensors bytes with the metadata (JSON) in the header."""
    meta = json.dumps(vector.metadata(), sort_keys=True)
    return st_save({"vector": vector.values.detach().float().cpu().contiguous()}, metadata={"fv_studio": meta})


def from_bytes(
    data: bytes, expect_model: str | None = None, expect_d_model: int | None = None, source: str = "file"
) -> Vector:
    """Parse a vector file (never unpickles). Wrong format, model or width: a clear error."""
    if len(data) > limits.MAX_UPLOAD_BYTES * 8:
        raise UserInputError(f"{source} is too large to be a vector file.")
    try:
        tensors = st_load(data)
    except Exception as exc:  # any parse failure is the user's file
        raise UserInputError(
            f"{source} is not a safetensors vector file (it could not be parsed: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})."
        ) from None
    meta_raw = header_metadata(data).get("fv_studio")
    if "vector" not in tensors or meta_raw is None:
        raise UserInputError(
            f"{source} is a safetensors file but not an FV Studio vector (no 'vector' tensor and metadata)."
        )
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        raise UserInputError(f"{source}: the vector metadata is not valid JSON.") from None
    values = tensors["vector"]
    if values.dim() not in (1, 2) or not torch.isfinite(values).all():
        raise UserInputError(f"{source}: the vector must be 1-D or 2-D with finite values.")
    if meta.get("method") not in METHODS:
        raise UserInputError(f"{source}: unknown vector method {meta.get('method')!r}.")
    model_id = str(meta.get("model_id", ""))
    if expect_model is not None and model_id != expect_model:
        raise UserInputError(f"{source} was made for model '{model_id}', but the loaded model is '{expect_model}'.")
    if expect_d_model is not None and values.shape[-1] != expect_d_model:
        raise UserInputError(
            f"{source} has width {values.shape[-1]}, but the loaded model's residual stream has width {expect_d_model}."
        )
    return Vector(
        values=values,
        model_id=model_id,
        layer=int(meta.get("layer", 0)),
        method=meta["method"],
        name=check_name(str(meta.get("name", "vector"))),
        provenance=meta.get("provenance", {}),
        created=float(meta.get("created", time.time())),
    )


def header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's JSON header (strings only)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return header.get("__metadata__", {}) or {}


def sidecar_path(path: str | Path) -> Path:
    """The ``.json`` file written next to a vector file (its metadata, for people to read)."""
    path = Path(path)
    if path.suffix == ".json":
        raise UserInputError(
            f"'{path.name}' ends in .json, the name of its sidecar file: give the vector file a .safetensors name."
        )
    return path.with_suffix(".json")


def save_file(vector: Vector, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``vector`` to ``path`` (safetensors) and its sidecar, each atomically.

    The safetensors file is the vector (loads read only it); the sidecar is written after it.
    With ``overwrite=False`` the vector file is created exclusively: ``FileExistsError`` if
    the name is taken, and nothing is written. Other ``OSError`` reach the caller; if the
    sidecar cannot be written, a file created exclusively is removed again, so a failed save
    leaves nothing behind.
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    write_atomic(path, to_bytes(vector), exclusive=not overwrite)
    try:
        write_atomic(sidecar, json.dumps(vector.metadata(), indent=2).encode("utf-8"))
    except BaseException:
        if not overwrite:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return path


def cosine_matrix(vectors: list[Vector]) -> torch.Tensor:
    """``[n, n]`` cosine similarity of the flattened vectors (shapes must match pairwise to compare)."""
    flat = [v.values.float().flatten() for v in vectors]
    out = torch.full((len(flat), len(flat)), float("nan"))
    for shape in {f.shape for f in flat}:  # one normalised matrix product per shape
        idx = torch.tensor([i for i, f in enumerate(flat) if f.shape == shape])
        unit = torch.nn.functional.normalize(torch.stack([flat[i] for i in idx]), dim=-1)  # [n, numel]
        out[idx[:, None], idx[None, :]] = unit @ unit.T
    return out


# --- the expression box: names, numbers, + - * and parentheses, nothing else ----------------

_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.USub,
    ast.UAdd,
    ast.Name,
    ast.Load,
    ast.Constant,
)


def combine(expression: str, vectors: dict[str, Vector]) -> Vector:
    """Evaluate ``a + 0.5 * b - c`` over named vectors. Parsed with ``ast``; never ``eval``."""
    text = expression.strip()
    if not text:
        raise UserInputError("The expression is empty: write something like `a + b - c`.")
    if len(text) > 500:
        raise UserInputError("The expression is too long (500 characters at most).")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise UserInputError(f"Cannot parse `{text}`: use names, numbers, +, -, * and parentheses.") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise UserInputError(f"`{text}` uses something other than names, numbers, +, -, * and parentheses.")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise UserInputError("Only numbers may appear as constants in the expression.")

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in vectors:
                raise UserInputError(f"Unknown vector '{node.id}'. Available: {', '.join(sorted(vectors)) or 'none'}.")
            return vectors[node.id]
        if isinstance(node, ast.UnaryOp):
            val = ev(node.operand)
            return -val if isinstance(node.op, ast.USub) else val
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Mult):
                if isinstance(left, Vector) and isinstance(right, Vector):
                    raise UserInputError("Two vectors cannot be multiplied; scale a vector by a number.")
                return left * right
            if isinstance(left, float) or isinstance(right, float):
                if isinstance(left, float) and isinstance(right, float):
                    return left + right if isinstance(node.op, ast.Add) else left - right
                raise UserInputError("A number cannot be added to a vector; scale it instead (`2 * a`).")
            return left + right if isinstance(node.op, ast.Add) else left - right
        raise UserInputError("Unsupported expression.")

    result = ev(tree)
    if not isinstance(result, Vector):
        raise UserInputError("The expression must name at least one vector.")
    if not torch.isfinite(result.values).all():
        raise UserInputError("The result has non-finite values.")
    return Vector(
        values=result.values,
        model_id=result.model_id,
        layer=result.layer,
        method="combined",
        name="combined",
        provenance={"recipe": text, "terms": sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})},
    )
