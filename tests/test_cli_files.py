"""The CLI's files: every file it cannot read or write is one line on stderr and exit status 2.

Files to write (``--out``, ``--save``) are checked before the model loads, so these cases
need no model; the cases that must get past the model (a write that fails at the very end,
a vector that is saved) use a tiny random model saved to a folder. More cases (missing
folders, folders given as files) are in the catalogue of ``test_bad_input.py``.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from conftest import save_tiny

from core.cli import main
from core.vectors import from_bytes


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(rc: int, out: str, err: str, *fragments: str) -> str:
    assert rc == 2, (rc, err[-2000:])
    assert out == "" and "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def offline(monkeypatch):
    """No hub: an unknown model id fails at once instead of retrying the network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at call time


def _denied(exc: OSError, folder: Path, monkeypatch) -> None:
    """New files in ``folder`` fail with ``exc``, as on a folder without write permission or on
    a read-only mount (chmod does not stop root, who runs these tests on some machines)."""
    real_open = os.open

    def guarded_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).parent == folder:
            raise type(exc)(exc.errno, exc.strerror, str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)


@pytest.fixture(params=["chmod", "no-permission", "read-only-mount"])
def read_only(request, tmp_path, monkeypatch) -> tuple[Path, str]:
    """A folder nobody can write in, and what the one error line says about it."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if request.param == "chmod":
        folder.chmod(0o555)
        request.addfinalizer(lambda: folder.chmod(0o755))
        try:
            (folder / "probe").write_text("x")
        except PermissionError:
            return folder, f"no permission to write in {folder}"
        pytest.skip("this user (root) writes in a read-only folder anyway; the simulated cases run")
    if request.param == "no-permission":
        _denied(PermissionError(errno.EACCES, "Permission denied"), folder, monkeypatch)
        return folder, f"no permission to write in {folder}"
    _denied(OSError(errno.EROFS, "Read-only file system"), folder, monkeypatch)
    return folder, f"{folder} is on a read-only filesystem"


def test_out_into_a_read_only_folder(read_only, offline, capsys):
    # a model that cannot load: the message about the folder shows it was checked first
    folder, why = read_only
    target = folder / "out.json"
    _one_error_line(
        *_run(["info", "--model", "no-such/model", "--out", str(target)], capsys), f"Cannot write --out {target}: {why}"
    )
    assert list(folder.iterdir()) == []


def test_save_into_a_read_only_folder(read_only, offline, capsys):
    folder, why = read_only
    target = folder / "fv.safetensors"
    _one_error_line(
        *_run(["fv", "--task", "antonym", "--model", "no-such/model", "--save", str(target)], capsys),
        f"Cannot write --save {target}: {why}",
    )
    assert list(folder.iterdir()) == []


@pytest.fixture(params=["chmod", "simulated"])
def unreadable(request, tmp_path, monkeypatch):
    """Make a file unreadable: chmod 000 where that binds, else reads of it are refused."""

    def make(path: Path) -> Path:
        if request.param == "chmod":
            path.chmod(0)
            request.addfinalizer(lambda: path.chmod(0o644))
            try:
                path.read_bytes()
            except PermissionError:
                return path
            pytest.skip("this user (root) reads an unreadable file anyway; the simulated case runs")
        real = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
        return path

    return make


def test_unreadable_task_file(unreadable, tmp_path, capsys):
    path = tmp_path / "pairs.txt"
    path.write_text("hot -> cold\nbig -> small\n")
    unreadable(path)
    _one_error_line(
        *_run(["predict", "--task-file", str(path)], capsys), f"Cannot read task file {path}", "ermission denied"
    )


def test_unreadable_vector(unreadable, tmp_path, capsys):
    path = tmp_path / "v.safetensors"
    path.write_bytes(b"whatever")
    unreadable(path)
    _one_error_line(
        *_run(["steer", "--prompt", "Hi", "--vector", str(path)], capsys),
        f"Cannot read --vector {path}: no permission to read it",
    )


# --- past the model: a tiny random model saved to a folder ---------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tokenizer, tmp_path_factory) -> Path:
    return save_tiny("gpt2", tokenizer, tmp_path_factory.mktemp("tiny_model"))


FAST_FV = ["--n-shots", "2", "--n-prompts", "4", "--heads", "2", "--n-eval", "4"]


def test_fv_save_and_out_write_complete_files(tiny_folder, tmp_path, capsys):
    vector, out = tmp_path / "fv_plural.safetensors", tmp_path / "report.json"
    rc, stdout, err = _run(
        [
            "fv",
            "--model",
            str(tiny_folder),
            "--task",
            "singular_plural",
            *FAST_FV,
            "--save",
            str(vector),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert rc == 0 and stdout == "", err[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["saved"] == str(vector)
    loaded = from_bytes(vector.read_bytes(), expect_model=str(tiny_folder))
    assert loaded.name == "fv_plural" and loaded.method == "function_vector" and loaded.layer == report["layer"]
    assert json.loads(vector.with_suffix(".json").read_text()) == loaded.metadata()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fv_plural.json", "fv_plural.safetensors", "report.json"]


def test_out_that_fails_at_the_end(tiny_folder, tmp_path, monkeypatch, capsys):
    """The folder was fine when checked, the disk is full when the JSON is written: still one
    line, no traceback, and no half-written or temporary file left behind."""
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if Path(dst).parent == tmp_path:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    target = tmp_path / "info.json"
    _one_error_line(
        *_run(["info", "--model", str(tiny_folder), "--out", str(target)], capsys),
        f"Cannot write --out {target}: No space left on device.",
    )
    assert list(tmp_path.iterdir()) == []
