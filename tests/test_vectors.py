"""Vectors: arithmetic, files that round-trip exactly, files that are refused, expressions."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save as st_save

from core.errors import UserInputError
from core.vectors import Library, Vector, check_name, combine, cosine_matrix, from_bytes, to_bytes

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


def test_library_refuses_wrong_width(tmp_path):
    lib = Library(tmp_path)
    lib.save(vec("a", 0))
    with pytest.raises(UserInputError, match="has width 64, but the loaded model's residual stream has width 576"):
        lib.load("tiny-llama", "a", expect_d_model=576)


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
