"""Files written so that nobody reads half of one and no writer's file is lost.

Several people share one server and one vector library, so two of them can save at the
same moment, and a reader can list the folder while a file is being written. Every file the
app or the CLI writes therefore goes through :func:`write_atomic`: the bytes go to a hidden
temporary file in the same folder (a rename across filesystems would not be atomic), are
flushed to disk, and only then take the final name, in one step.

- ``exclusive=False`` uses ``os.replace``: a reader sees the old file or the new one.
- ``exclusive=True`` uses ``os.link``, which fails when the name exists: of two writers racing
  for one name exactly one wins, and the other gets ``FileExistsError`` instead of silently
  replacing the winner's file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

# os.link fails with these where the filesystem has no hard links (FAT, some network mounts)
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})


def _temporary_name(path: Path) -> Path:
    # hidden and ending in .tmp, so no listing of "*.safetensors" or "*.json" ever shows it;
    # the final name is cut so that a long one still leaves room under the 255-byte limit
    return path.with_name(f".{path.name[:100]}.{secrets.token_hex(8)}.tmp")


def _create_new(path: Path) -> int:
    # mode 0o666 less the umask, as open() would give: the file is as readable as any other
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


def write_atomic(path: str | Path, data: bytes, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` in one step; with ``exclusive``, only if no file has the name.

    Raises ``FileExistsError`` (exclusive and the name is taken: nothing is written) and any
    other ``OSError`` (missing folder, no permission, full disk) for the caller to turn into
    a message. The temporary file is removed whatever happens.
    """
    path = Path(path)
    tmp: Path | None = _temporary_name(path)
    try:
        with os.fdopen(_create_new(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        if not exclusive:
            os.replace(tmp, path)
            tmp = None
            return path
        try:
            os.link(tmp, path)  # atomic, and refuses an existing name
        except OSError as exc:
            if isinstance(exc, FileExistsError) or exc.errno not in _NO_HARD_LINKS:
                raise
            # no hard links here: claim the name first (O_EXCL), then move the bytes onto it;
            # a reader may see the claimed file empty for a moment, never another writer's
            os.close(_create_new(path))
            os.replace(tmp, path)
            tmp = None
        return path
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def check_writable(path: str | Path) -> None:
    """Raise the ``OSError`` that writing ``path`` would meet, before any slow work is done.

    Creates and removes a temporary file next to ``path``: asking the filesystem is the only
    check that also holds for root, read-only mounts and full disks (``os.access`` is not).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    probe = _temporary_name(path)
    os.close(_create_new(probe))
    probe.unlink()
