"""Steering vectors: one object for function vectors, h-vectors and activation-addition
vectors, with arithmetic, provenance, and safe files.

A vector is ``values`` (``[d_model]``, added at one position, or ``[n_pos, d_model]``, added
at a prompt's first positions as in activation addition) plus the model it belongs to, the
layer it is meant for, how it was made, and where it came from. Files are safetensors (the
tensor, with the metadata as JSON in the header) plus a ``.json`` sidecar for people to
read; nothing is ever unpickled.

A library keeps each model's vectors in its own folder, named by :func:`model_folder_name`
(readable, but made unique by a hash of the exact model id). Folders named by the earlier
scheme, which ``org/m`` and ``org_m`` could share, are still read: each file's header says
which model it belongs to.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
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
    meta_raw = _header_metadata(data).get("fv_studio")
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


def _header_metadata(data: bytes) -> dict[str, str]:
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


def model_folder_name(model_id: str) -> str:
    """The library folder of ``model_id``: one path component, distinct for distinct ids.

    A readable slug (unsafe characters as '_', no leading dot, so never ``.`` or ``..``, at
    most 48 characters) then 16 hex digits of the SHA-256 of the exact id, which keeps
    ``org/m`` apart from ``org_m`` and long ids apart from each other.
    """
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "_", model_id).lstrip("._-")[:48]
    digest = hashlib.sha256(model_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}-{digest}" if slug else digest


def _legacy_folder_name(model_id: str) -> str | None:
    """The folder the first library versions used (not injective: ``org/m`` = ``org_m``).

    None where that name was ``.`` or ``..`` (or empty): it meant the root or a folder
    outside it, which is never read. None too where it was too long to be a folder name.
    """
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", model_id)
    return None if name in ("", ".", "..") or len(name) > 255 else name


def _file_model_id(path: Path) -> str | None:
    """The model id in a vector file's header (read without loading the tensor); None if unreadable."""
    try:
        with path.open("rb") as f:
            prefix = f.read(8)
            n = int.from_bytes(prefix, "little")
            if len(prefix) < 8 or not 0 < n <= MAX_HEADER_BYTES:
                return None
            meta = json.loads(_header_metadata(prefix + f.read(n))["fv_studio"])
        return str(meta.get("model_id", ""))  # as from_bytes reads it
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class Library:
    """A folder of vectors: ``<name>.safetensors`` plus ``<name>.json``, per model.

    Saves are atomic and, unless ``overwrite``, exclusive: two people saving one name at
    once get one vector and one clear error, never a half-written or silently replaced file.
    Every ``OSError`` becomes a :class:`UserInputError` that says which file and why.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, model_id: str) -> Path:
        """Where ``model_id``'s vectors are saved: always a direct child of the root."""
        return self.root / model_folder_name(model_id)

    def _legacy_files(self, model_id: str) -> dict[str, Path]:
        """``name -> path`` of this model's vectors in its folder of the earlier naming scheme.

        Only files whose header names this exact model: another model may share the folder.
        Files with an unreadable header cannot be told apart, so they are left out (they
        cannot be loaded either).
        """
        name = _legacy_folder_name(model_id)
        if name is None:
            return {}
        folder = self.root / name
        try:
            found = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
        except OSError:  # an unreadable old folder holds nothing this library can load
            return {}
        return {p.stem: p for p in found if _file_model_id(p) == model_id}

    def _find(self, model_id: str, name: str) -> Path | None:
        path = self.folder(model_id) / f"{name}.safetensors"
        return path if path.exists() else self._legacy_files(model_id).get(name)

    def save(self, vector: Vector, overwrite: bool = False) -> Path:
        """Save ``vector`` under its name; a name already taken needs ``overwrite=True``."""
        name = vector.name
        exists = UserInputError(
            f"A vector named '{name}' already exists for model '{vector.model_id}'; pick another name."
        )
        legacy = self._legacy_files(vector.model_id).get(name)
        if legacy is not None and not overwrite:
            raise exists
        folder = self.folder(vector.model_id)
        path = folder / f"{name}.safetensors"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            save_file(vector, path, overwrite=overwrite)
        except FileExistsError:
            raise exists from None
        except OSError as exc:
            raise UserInputError(f"Cannot save vector '{name}' in {folder}: {exc.strerror or exc}.") from None
        if legacy is not None:  # replaced: the old copy would come back after a delete
            with contextlib.suppress(UserInputError):  # the save itself succeeded
                self._unlink(legacy)
        return path

    def names(self, model_id: str) -> list[str]:
        folder = self.folder(model_id)
        current = {p.stem for p in folder.glob("*.safetensors")} if folder.is_dir() else set()
        return sorted(current | set(self._legacy_files(model_id)))

    def load(self, model_id: str, name: str, expect_d_model: int | None = None) -> Vector:
        path = self._find(model_id, check_name(name))
        missing = UserInputError(f"No vector named '{name}' for model '{model_id}'.")
        if path is None:
            raise missing
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # deleted since it was found
            raise missing from None
        except OSError as exc:
            raise UserInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        return from_bytes(data, model_id, expect_d_model, source=path.name)

    def load_all(self, model_id: str) -> dict[str, Vector]:
        return {n: self.load(model_id, n) for n in self.names(model_id)}

    def delete(self, model_id: str, name: str) -> None:
        name = check_name(name)
        self._unlink(self.folder(model_id) / f"{name}.safetensors")
        legacy = self._legacy_files(model_id).get(name)
        if legacy is not None:
            self._unlink(legacy)

    @staticmethod
    def _unlink(path: Path) -> None:
        """Remove a vector file and its sidecar (either may be gone already)."""
        for p in (path, path.with_suffix(".json")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise UserInputError(f"Cannot delete {p}: {exc.strerror or exc}.") from None


def default_library_dir() -> Path:
    base = os.environ.get("FV_STUDIO_DATA") or (Path.home() / ".local" / "share" / "fv-studio")
    return Path(base) / "vectors"


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
