"""The vector library: a folder of saved vectors per model, shared by every user of a server.

Each model's vectors live in their own folder, named by :func:`model_folder_name` (readable,
but made unique by a hash of the exact model id, and always one folder inside the root).
Folders named by the earlier scheme, which ``org/m`` and ``org_m`` could share, are still read:
each file's header says which model it belongs to. Saves are atomic and, unless
``overwrite``, exclusive (:mod:`core.files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

from core.errors import UserInputError
from core.vectors import MAX_HEADER_BYTES, Vector, check_name, from_bytes, header_metadata, save_file


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
            meta = json.loads(header_metadata(prefix + f.read(n))["fv_studio"])
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
