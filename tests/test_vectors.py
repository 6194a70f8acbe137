"""Vectors: arithmetic, files that round-trip exactly, files that are refused, expressions;
the library's folders (one per model, inside the root, old folders still read) and saves
that two people can make at once."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pickle
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from core.errors import UserInputError
from core.files import write_atomic
from core.library import Library, model_folder_name
from core.vectors import Vector, check_name, combine, cosine_matrix, from_bytes, save_file, to_bytes

D = 64


def vec(name: str, seed: int, model_id: str = "tiny-llama", d: int = D, layer: int = 1, **kw) -> Vector:
    g = torch.Generator().manual_seed(seed)
    return Vector(
        values=torch.randn(d, generator=g),
        model_id=model_id,
        layer=layer,
        method=kw.pop("method", "function_vector"),
        name=name,
        **kw,
    )


def _same_vector(a: Vector, b: Vector) -> None:
    assert a.values.dtype == b.values.dtype == torch.float32
    assert torch.equal(a.values, b.values)  # bit-identical
    assert (a.model_id, a.layer, a.method, a.name) == (b.model_id, b.layer, b.method, b.name)
    assert a.provenance == b.provenance
    assert a.created == b.created
    assert a.metadata() == b.metadata()


# --- arithmetic ----------------------------------------------------------------------------


def test_arithmetic_identities():
    a, b = vec("a", 0), vec("b", 1)
    assert torch.equal((a - a).values, torch.zeros(D))
    assert torch.equal((2 * a).values, (a + a).values)
    assert torch.equal((a * 2).values, (a + a).values)
    assert torch.equal((-a).values, -a.values)
    assert torch.equal((a + b).values, a.values + b.values)
    assert torch.equal((a - b).values, a.values - b.values)
    c = a + b
    assert c.method == "combined" and c.model_id == a.model_id and c.layer == a.layer
    assert c.provenance == {"recipe": "a + b"}
    assert a.d_model == D and a.norm == pytest.approx(float(a.values.norm()))


def test_arithmetic_refuses_mismatches():
    a = vec("a", 0)
    with pytest.raises(UserInputError, match="different models: 'tiny-llama' and 'tiny-gpt2'"):
        a + vec("b", 1, model_id="tiny-gpt2")
    with pytest.raises(UserInputError, match=r"different shapes: \(64,\) and \(32,\)"):
        a - vec("b", 1, d=32)
    with pytest.raises(TypeError):
        a + 1.0
    with pytest.raises(TypeError):
        a * a


def test_names():
    assert check_name("  fv_antonym-2 ") == "fv_antonym-2"
    assert vec("a", 0).renamed("b").name == "b"
    for bad in ("", "2fast", "has space", "../etc", "a" * 65, "x.y"):
        with pytest.raises(UserInputError, match="Invalid vector name"):
            check_name(bad)


@pytest.mark.parametrize("bad", ["my vec", "", "../x", "x.y", "2fast", "a" * 65, "a/b"])
def test_a_vector_checks_its_name_when_made(bad):
    """A name that files cannot carry is refused at once, not saved and then refused at load."""
    with pytest.raises(UserInputError, match="Invalid vector name"):
        vec(bad, 0)
    with pytest.raises(UserInputError, match="Invalid vector name"):
        vec("ok", 0).renamed(bad)
    with pytest.raises(UserInputError, match="Invalid vector name"):
        dataclasses.replace(vec("ok", 0), name=bad)


def test_a_vector_name_is_trimmed_and_must_be_text():
    assert vec("  padded ", 0).name == "padded"
    assert from_bytes(to_bytes(vec(" padded", 0))).name == "padded"
    with pytest.raises(UserInputError, match="must be text"):
        vec(7, 0)


# --- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(D,), (3, D)])
def test_library_round_trip_is_exact(tmp_path, shape):
    g = torch.Generator().manual_seed(0)
    v = Vector(
        values=torch.randn(*shape, generator=g) * 1e-3,
        model_id="org/tiny model",
        layer=2,
        method="actadd" if len(shape) == 2 else "h_vector",
        name="my_vec",
        provenance={"task": "antonym", "heads": [[1, 2]], "settings": {"seed": 3}, "n": None},
    )
    lib = Library(tmp_path)
    path = lib.save(v)
    assert path.exists() and path.with_suffix(".json").exists()
    assert json.loads(path.with_suffix(".json").read_text())["model_id"] == "org/tiny model"
    assert lib.names("org/tiny model") == ["my_vec"]
    assert lib.names("other") == []
    loaded = lib.load("org/tiny model", "my_vec", expect_d_model=D)
    _same_vector(loaded, v)
    assert lib.load_all("org/tiny model")["my_vec"].metadata() == v.metadata()
    # bytes round trip too
    _same_vector(from_bytes(to_bytes(v)), v)
    # saving again needs overwrite; deleting removes both files
    with pytest.raises(UserInputError, match="already exists"):
        lib.save(v)
    lib.save(v, overwrite=True)
    lib.delete("org/tiny model", "my_vec")
    assert lib.names("org/tiny model") == [] and not path.with_suffix(".json").exists()
    with pytest.raises(UserInputError, match="No vector named 'my_vec'"):
        lib.load("org/tiny model", "my_vec")


# --- the library's folders -----------------------------------------------------------------

AWKWARD_IDS = [
    "..",
    ".",
    "/",
    "",
    "a/../../b",
    "../x",
    "~/m",
    ".hidden",
    "org/m",
    "org_m",
    "org m",
    "C:\\models\\m",
    "m\x00",
    "é/ü",
    "x" * 500,
    "x" * 499 + "y",
    "/home/u/models/m",
]


@pytest.mark.parametrize("model_id", AWKWARD_IDS, ids=lambda m: repr(m)[:24])
def test_library_folder_is_one_component_inside_the_root(tmp_path, model_id):
    root = tmp_path / "data" / "vectors"
    lib = Library(root)
    folder = lib.folder(model_id)
    assert folder.parent == root and folder.name == model_folder_name(model_id)
    assert folder.name not in ("", ".", "..") and not folder.name.startswith(".")
    assert "/" not in folder.name and "\\" not in folder.name and "\x00" not in folder.name
    assert len(folder.name) <= 65  # 48 readable characters, '-', 16 hex digits
    v = vec("a", 0, model_id=model_id)
    path = lib.save(v)
    assert path.resolve().parent.parent == root.resolve()
    assert lib.names(model_id) == ["a"]
    _same_vector(lib.load(model_id, "a"), v)
    everything = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert everything == sorted(
        [
            "data",
            "data/vectors",
            f"data/vectors/{folder.name}",
            f"data/vectors/{folder.name}/a.safetensors",
            f"data/vectors/{folder.name}/a.json",
        ]
    )


def test_library_folders_differ_for_different_models(tmp_path):
    """org/m and org_m (and two 500-character ids alike in their first 499) keep apart."""
    lib = Library(tmp_path)
    assert len({lib.folder(m) for m in AWKWARD_IDS}) == len(AWKWARD_IDS)
    assert model_folder_name("org/m").startswith("org_m-")  # still readable
    made = {m: vec("same", i, model_id=m) for i, m in enumerate(AWKWARD_IDS)}
    for v in made.values():
        lib.save(v)  # no "already exists": every model has its own folder
    for m, v in made.items():
        assert lib.names(m) == ["same"]
        _same_vector(lib.load(m, "same"), v)


def _old_save(folder: Path, vector: Vector) -> Path:
    """A vector saved as the first library versions did, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{vector.name}.safetensors"
    path.write_bytes(to_bytes(vector))
    path.with_suffix(".json").write_text(json.dumps(vector.metadata(), indent=2))
    return path


def test_library_still_finds_vectors_in_old_folders(tmp_path):
    """Old folders were named by replacing unsafe characters, so org/m and org_m shared
    'org_m': each file's header says whose it is."""
    lib = Library(tmp_path)
    mine, theirs = vec("a", 0, model_id="org/m"), vec("b", 1, model_id="org_m")
    _old_save(tmp_path / "org_m", mine)
    _old_save(tmp_path / "org_m", theirs)
    dotted = _old_save(tmp_path / "a_.._.._b", vec("d", 2, model_id="a/../../b"))
    assert lib.names("org/m") == ["a"] and lib.names("org_m") == ["b"] and lib.names("a/../../b") == ["d"]
    _same_vector(lib.load("org/m", "a"), mine)
    _same_vector(lib.load("org_m", "b"), theirs)
    assert lib.load_all("a/../../b")["d"].model_id == "a/../../b"
    with pytest.raises(UserInputError, match="No vector named 'b' for model 'org/m'"):
        lib.load("org/m", "b")
    (tmp_path / "org_m" / "broken.safetensors").write_bytes(b"not a vector")  # nobody's: listed for neither
    assert lib.names("org/m") == ["a"] and lib.names("org_m") == ["b"]

    # new vectors go to the new folder and are listed with the old ones; an old name is taken
    lib.save(vec("c", 3, model_id="org/m"))
    assert lib.names("org/m") == ["a", "c"]
    with pytest.raises(UserInputError, match="A vector named 'a' already exists"):
        lib.save(vec("a", 4, model_id="org/m"))
    # overwriting replaces the old copy, which must not come back after a delete
    newer = vec("a", 5, model_id="org/m")
    lib.save(newer, overwrite=True)
    _same_vector(lib.load("org/m", "a"), newer)
    assert not (tmp_path / "org_m" / "a.safetensors").exists()
    lib.delete("org/m", "a")
    assert lib.names("org/m") == ["c"]
    # deleting org/m's 'b' leaves org_m's 'b' alone; org_m's own delete removes it and its sidecar
    lib.delete("org/m", "b")
    assert lib.names("org_m") == ["b"]
    lib.delete("org_m", "b")
    assert lib.names("org_m") == [] and not (tmp_path / "org_m" / "b.json").exists()
    lib.delete("a/../../b", "d")
    assert not dotted.exists() and not dotted.with_suffix(".json").exists()


def test_library_never_reads_an_old_folder_outside_its_root(tmp_path):
    """The old names of '..', '.' and '' were the root's parent and the root itself."""
    root = tmp_path / "data" / "vectors"
    strays = {"..": root.parent, ".": root, "": root}
    for i, (model_id, where) in enumerate(strays.items()):
        _old_save(where, vec(f"stray{i}", i, model_id=model_id))
    lib = Library(root)
    for i, model_id in enumerate(strays):
        assert lib.names(model_id) == []
        with pytest.raises(UserInputError, match=f"No vector named 'stray{i}'"):
            lib.load(model_id, f"stray{i}")
        lib.delete(model_id, f"stray{i}")  # deletes nothing there either
        lib.save(vec(f"stray{i}", 10 + i, model_id=model_id))  # the name is free in its own folder
    for i, where in enumerate(strays.values()):
        assert (where / f"stray{i}.safetensors").exists() and (where / f"stray{i}.json").exists()


def test_library_refuses_wrong_width(tmp_path):
    lib = Library(tmp_path)
    lib.save(vec("a", 0))
    with pytest.raises(UserInputError, match="has width 64, but the loaded model's residual stream has width 576"):
        lib.load("tiny-llama", "a", expect_d_model=576)


# --- saving: atomic, and exclusive unless overwriting ------------------------------------------


def test_racing_saves_of_one_name_keep_exactly_one(tmp_path):
    """Several people save the same name at the same moment: one wins, the others are told."""
    lib = Library(tmp_path)
    n_threads = 4
    start = threading.Barrier(n_threads)
    for i in range(150):
        name = f"v{i}"
        candidates = [vec(name, n_threads * i + k) for k in range(n_threads)]
        results: list[object] = [None] * n_threads

        def save(k: int, results: list[object] = results, candidates: list = candidates) -> None:
            start.wait()
            try:
                results[k] = lib.save(candidates[k])
            except UserInputError as exc:
                results[k] = exc

        threads = [threading.Thread(target=save, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [k for k, r in enumerate(results) if isinstance(r, Path)]
        assert len(winners) == 1, results
        for k, r in enumerate(results):
            if k != winners[0]:
                assert isinstance(r, UserInputError) and f"A vector named '{name}' already exists" in str(r)
        won = candidates[winners[0]]
        _same_vector(lib.load("tiny-llama", name), won)  # complete, and the winner's
        assert json.loads(results[winners[0]].with_suffix(".json").read_text()) == won.metadata()
    assert sorted(p.name for p in lib.folder("tiny-llama").iterdir() if not p.name.startswith("v")) == []


def test_overwriting_never_shows_a_reader_half_a_file(tmp_path):
    """One person overwrites a (large) vector again and again while another loads it."""
    lib = Library(tmp_path)
    big = [vec("big", k, d=200_000) for k in range(2)]
    lib.save(big[0])
    done, failures = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            try:
                v = lib.load("tiny-llama", "big")
                assert any(torch.equal(v.values, b.values) for b in big)
            except (UserInputError, AssertionError) as exc:
                failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            lib.save(big[i % 2], overwrite=True)
    finally:
        done.set()
        reader.join()
    assert failures == []


def test_write_atomic_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"new", exclusive=True)
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # fails half-way through writing the temporary file
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "file.bin", b"x")


def test_exclusive_save_without_hard_links(tmp_path, monkeypatch):
    """Filesystems without hard links: the name is claimed with O_EXCL instead, still exclusive."""

    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    lib = Library(tmp_path)
    first = vec("a", 0)
    lib.save(first)
    with pytest.raises(UserInputError, match="already exists"):
        lib.save(vec("a", 1))
    _same_vector(lib.load("tiny-llama", "a"), first)
    assert sorted(p.name for p in lib.folder("tiny-llama").iterdir()) == ["a.json", "a.safetensors"]


def test_save_errors_are_messages(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the library should be")
    with pytest.raises(UserInputError, match=r"Cannot save vector 'a' in .*not_a_folder"):
        Library(blocker).save(vec("a", 0))
    with pytest.raises(UserInputError, match="ends in .json"):
        save_file(vec("a", 0), tmp_path / "a.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]


def test_from_bytes_refuses_wrong_model_and_width():
    data = to_bytes(vec("a", 0))
    with pytest.raises(UserInputError, match="made for model 'tiny-llama', but the loaded model is 'tiny-gpt2'"):
        from_bytes(data, expect_model="tiny-gpt2")
    with pytest.raises(UserInputError, match="has width 64.*width 128"):
        from_bytes(data, expect_model="tiny-llama", expect_d_model=128)
    assert from_bytes(data, expect_model="tiny-llama", expect_d_model=D).name == "a"


class _Boom:
    def __reduce__(self):  # would run code if ever unpickled
        return (exec, ("raise SystemExit('unpickled!')",))


def _header(meta: dict) -> bytes:
    return st_save({"vector": torch.zeros(4)}, metadata={"fv_studio": json.dumps(meta)})


@pytest.mark.parametrize(
    "data, pattern",
    [
        (pickle.dumps(_Boom()), "not a safetensors vector file"),
        (pickle.dumps({"vector": torch.zeros(4)}), "not a safetensors vector file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a safetensors vector file"),
        (b"", "not a safetensors vector file"),
        (b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "not a safetensors vector file|not an FV Studio vector"),
        (st_save({"vector": torch.zeros(4)}), "safetensors file but not an FV Studio vector"),
        (st_save({"other": torch.zeros(4)}, metadata={"fv_studio": "{}"}), "not an FV Studio vector"),
        (st_save({"vector": torch.zeros(4)}, metadata={"fv_studio": "{oops"}), "metadata is not valid JSON"),
        (_header({"method": "mystery", "model_id": "m"}), "unknown vector method 'mystery'"),
        (
            st_save({"vector": torch.tensor([1.0, float("nan")])}, metadata={"fv_studio": '{"method": "caa"}'}),
            "finite values",
        ),
        (
            st_save({"vector": torch.zeros(2, 2, 2)}, metadata={"fv_studio": '{"method": "caa"}'}),
            "1-D or 2-D",
        ),
        (_header({"method": "caa", "model_id": "m", "name": "../../etc/passwd"}), "Invalid vector name"),
    ],
)
def test_from_bytes_refuses_bad_files(data, pattern):
    with pytest.raises(UserInputError, match=pattern):
        from_bytes(data, source="upload")


def test_random_bytes_never_crash():
    g = torch.Generator().manual_seed(0)
    for n in (1, 7, 8, 9, 64, 4096):
        data = bytes(torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8).tolist())
        with pytest.raises(UserInputError):
            from_bytes(data)


def test_cosine_matrix():
    a, b = vec("a", 0), vec("b", 1)
    m = cosine_matrix([a, -a, b, vec("c", 2, d=32)])
    assert m[0, 0] == pytest.approx(1.0) and m[0, 1] == pytest.approx(-1.0)
    assert torch.isnan(m[0, 3]) and m[3, 3] == pytest.approx(1.0)
    expected = torch.nn.functional.cosine_similarity(a.values.flatten(), b.values.flatten(), dim=0)
    assert m[0, 2] == pytest.approx(float(expected), abs=1e-6) and m[2, 0] == m[0, 2]


# --- expressions ---------------------------------------------------------------------------


def test_combine_expression():
    a, b, c = vec("a", 0), vec("b", 1), vec("c", 2)
    out = combine("a + 0.5*b - (c)", {"a": a, "b": b, "c": c})
    assert torch.equal(out.values, a.values + 0.5 * b.values - c.values)
    assert out.method == "combined" and out.model_id == "tiny-llama"
    assert out.provenance == {"recipe": "a + 0.5*b - (c)", "terms": ["a", "b", "c"]}
    assert torch.equal(combine("-2 * a", {"a": a}).values, -2 * a.values)
    assert torch.equal(combine("a * 3 - +b", {"a": a, "b": b}).values, a.values * 3 - b.values)
    assert torch.equal(combine("(1 + 2) * a", {"a": a}).values, 3 * a.values)
    assert torch.equal(combine("a - a", {"a": a}).values, torch.zeros(D))


@pytest.mark.parametrize(
    "expression, pattern",
    [
        ("__import__('os')", "something other than names, numbers"),
        ("a.b", "something other than"),
        ("a[0]", "something other than"),
        ("a ** 2", "something other than"),
        ("a / 2", "something other than"),
        ("a @ b", "something other than"),
        ("'a'", "Only numbers"),
        ("a + 'b'", "Only numbers"),
        ("abs(a)", "something other than"),
        ("(lambda: a)()", "something other than"),
        ("[a, b]", "something other than"),
        ("a if b else a", "something other than"),
        ("a; b", "Cannot parse"),
        ("a +", "Cannot parse"),
        ("", "empty"),
        ("a + " * 200 + "a", "too long"),
        ("d", "Unknown vector 'd'. Available: a, b"),
        ("a * b", "Two vectors cannot be multiplied"),
        ("a + 1", "A number cannot be added to a vector"),
        ("2 * 3", "must name at least one vector"),
        ("1e308 * 1e308 * a", "non-finite"),
    ],
)
def test_combine_rejects(expression, pattern):
    vectors = {"a": vec("a", 0), "b": vec("b", 1)}
    with pytest.raises(UserInputError, match=pattern):
        combine(expression, vectors)


def test_combine_refuses_mixed_models():
    with pytest.raises(UserInputError, match="different models"):
        combine("a + b", {"a": vec("a", 0), "b": vec("b", 1, model_id="other")})
    with pytest.raises(UserInputError, match="different shapes"):
        combine("a - b", {"a": vec("a", 0), "b": vec("b", 1, d=32)})
