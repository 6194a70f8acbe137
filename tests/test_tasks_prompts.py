"""Tasks (built in, typed, uploaded), their validation messages, and prompt building."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core import limits
from core.errors import UserInputError
from core.prompts import (
    DEFAULT_SEPARATOR,
    MIN_PAIRS_FOR_SPLIT,
    PromptSettings,
    build_prompts,
    check_template,
    icl_prompts,
    render_demo,
    render_query,
    split_task,
)
from core.tasks import Pair, builtin_names, describe, load_builtin, load_task_file, parse_file, parse_lines, validate

N_BUILTIN = 13


def _task(n: int, name: str = "t"):
    return validate(name, [(f"in{i}", f"out{i}") for i in range(n)])


# --- built-in tasks ------------------------------------------------------------------------


def test_builtin_task_list():
    names = builtin_names()
    assert len(names) == N_BUILTIN
    assert "antonym" in names and "index" not in names


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_task_loads(name):
    task = load_builtin(name)
    assert task.name == name
    assert len(task) >= 60
    assert describe(name), f"{name} has no description in index.json"
    assert len({p.input for p in task.pairs}) == len(task)
    for p in task.pairs:
        assert p.input == p.input.strip() and p.output == p.output.strip() and p.input and p.output


def test_builtin_name_is_normalised_and_unknown_is_an_error():
    assert load_builtin(" Country-Capital ").name == "country_capital"
    with pytest.raises(UserInputError, match="Unknown task 'nope'.*antonym"):
        load_builtin("nope")


def test_task_round_trips_through_lines_and_json():
    task = load_builtin("antonym")
    assert parse_lines(task.to_lines()).pairs == task.pairs
    data = json.dumps(task.to_json()).encode()
    assert parse_file(data, "antonym.json").pairs == task.pairs


# --- typed lines ---------------------------------------------------------------------------


def test_parse_each_separator():
    text = "hot -> cold\nbig: small\nup\tdown\nfast, slow\n\n# a comment\n  wet ->dry  "
    task = parse_lines(text)
    assert [(p.input, p.output) for p in task.pairs] == [
        ("hot", "cold"),
        ("big", "small"),
        ("up", "down"),
        ("fast", "slow"),
        ("wet", "dry"),
    ]
    assert task.name == "custom"


def test_arrow_wins_over_later_separators():
    task = parse_lines("ratio 1:2 -> half, or so\na: b, c")
    assert task.pairs[0] == Pair("ratio 1:2", "half, or so")
    assert task.pairs[1] == Pair("a", "b, c")  # ':' comes before ',' in the order tried


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"No examples given.*hot -> cold"),
        ("   \n# only a comment\n", r"No examples given"),
        ("hot -> cold", r"Only one example"),
        ("hot -> cold\nbig small\nup -> down", r"Line 2 \('big small'\) has no separator.*->"),
        ("hot -> cold\nbig -> small\nhot -> warm", r"Line 3: duplicate input 'hot' \(first on line 1\)"),
        ("hot -> cold\n -> small", r"Line 2: the input is empty"),
        ("hot -> cold\nbig ->   ", r"Line 2: the output is empty"),
        (
            "hot -> cold\nbig -> " + "x" * (limits.MAX_ENTRY_CHARS + 1),
            rf"Line 2: the output has {limits.MAX_ENTRY_CHARS + 1} characters \(the limit is {limits.MAX_ENTRY_CHARS}\)",
        ),
        (
            "a" * (limits.MAX_ENTRY_CHARS + 1) + " -> b\nc -> d",
            r"Line 1: the input has",
        ),
        (
            "\n".join(f"w{i} -> v{i}" for i in range(limits.MAX_PAIRS + 1)),
            rf"Too many .*{limits.MAX_PAIRS}",
        ),
    ],
)
def test_bad_typed_input(text, pattern):
    with pytest.raises(UserInputError, match=pattern):
        parse_lines(text)


def test_limits_are_inclusive():
    long = "x" * limits.MAX_ENTRY_CHARS
    assert len(parse_lines(f"{long} -> a\nb -> {long}")) == 2
    assert len(_task(limits.MAX_PAIRS)) == limits.MAX_PAIRS
    with pytest.raises(UserInputError, match=rf"Too many pairs: {limits.MAX_PAIRS + 1}"):
        _task(limits.MAX_PAIRS + 1)


# --- uploaded files ------------------------------------------------------------------------


def test_parse_csv_json_and_text_files():
    csv_data = b"\xef\xbb\xbfInput,Output\nhot,cold\nbig,small\n"  # UTF-8 BOM and capitalised header
    task = parse_file(csv_data, "my_task.csv")
    assert task.name == "my_task" and task.pairs == (Pair("hot", "cold"), Pair("big", "small"))
    js = json.dumps({"pairs": [{"input": "a", "output": "b"}, {"input": 1, "output": 2}]}).encode()
    assert parse_file(js, "x.json").pairs == (Pair("a", "b"), Pair("1", "2"))
    assert parse_file(b"a -> b\nc: d\n", "notes.txt").pairs == (Pair("a", "b"), Pair("c", "d"))


@pytest.mark.parametrize(
    "data, filename, pattern",
    [
        (b"hot -> cold\nbig -> sm\xffall\n", "t.txt", r"t.txt is not UTF-8 text \(line 2, byte 21 cannot"),
        (b"\xef\xbb\xbfa -> b\n\nc -> \xff\n", "bom.txt", r"bom.txt is not UTF-8 text \(line 3"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "pic.png", r"pic.png is not UTF-8 text \(line 1, byte 0"),
        (b"hot -> cold\x00\x00\x00\nbig -> small\n", "blob.bin", r"blob.bin looks like a binary file"),
        (
            b"a,b\nhot,cold\nbig,small\n",
            "t.csv",
            r"t.csv: a CSV needs a header with 'input' and 'output' columns \(found: a, b\)",
        ),
        (b"input,output\nhot,cold\nhot,warm\n", "t.csv", r"Line 3: duplicate input 'hot'"),
        (b"input,output\nhot,cold\nbig,\n", "t.csv", r"Line 3: the output is empty"),
        (b'[{"input": "a", "output": "b"},', "t.json", r"t.json: invalid JSON at line 1"),
        (b'{"a": 1}', "t.json", r"t.json: expected a JSON list"),
        (b'[{"input": "a"}, {"input": "b", "output": "c"}]', "t.json", r"t.json: item 1 is not an object"),
        (b'[{"input": [1], "output": "b"}, {"input": "c", "output": "d"}]', "t.json", r"item 1 has a non-text"),
        (b"x" * (limits.MAX_UPLOAD_BYTES + 1), "big.txt", r"big.txt is .* KiB; the limit is"),
    ],
)
def test_bad_files(data, filename, pattern):
    with pytest.raises(UserInputError, match=pattern):
        parse_file(data, filename)


def test_too_many_csv_rows():
    rows = "\n".join(f"w{i},v{i}" for i in range(limits.MAX_PAIRS + 1))
    with pytest.raises(UserInputError, match=rf"t.csv: too many rows \(the limit is {limits.MAX_PAIRS} pairs\)"):
        parse_file(("input,output\n" + rows).encode(), "t.csv")


def test_load_task_file(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("a -> b\nc -> d\n", encoding="utf-8")
    assert load_task_file(path).name == "mine"
    with pytest.raises(UserInputError, match="Cannot read task file"):
        load_task_file(tmp_path / "missing.txt")


# --- templates -----------------------------------------------------------------------------


def test_template_rendering():
    assert check_template("Q: {x}\nA: {y}") == ("Q: ", "\nA: ", "")
    assert render_demo("Q: {x}\nA: {y}", Pair("hot", "cold")) == "Q: hot\nA: cold"
    assert render_query("Q: {x}\nA: {y}", "hot") == "Q: hot\nA:"
    assert render_query("{x} => {y}.", "hot") == "hot =>"


@pytest.mark.parametrize(
    "template, pattern",
    [
        ("Q: {x}\nA:", r"\{x\} and \{y\} exactly once"),
        ("Q: \nA: {y}", r"\{x\} and \{y\} exactly once"),
        ("{x} {x} {y}", r"exactly once"),
        ("{y} <- {x}", r"\{x\} must come before \{y\}"),
    ],
)
def test_bad_templates(template, pattern):
    with pytest.raises(UserInputError, match=pattern):
        check_template(template)
    with pytest.raises(UserInputError, match=pattern):
        build_prompts(_task(10).pairs, _task(10).pairs, PromptSettings(n_shots=2, n_prompts=2, template=template))


# --- prompts -------------------------------------------------------------------------------


def _parse_prompt(text: str, separator: str = DEFAULT_SEPARATOR) -> tuple[list[tuple[str, str]], str]:
    """Default-template prompt -> (demos as (x, y), query x)."""
    blocks = text.split(separator)
    demos = []
    for block in blocks[:-1]:
        q, a = block.split("\n")
        assert q.startswith("Q: ") and a.startswith("A: ")
        demos.append((q[3:], a[3:]))
    q, a = blocks[-1].split("\n")
    assert a == "A:"
    return demos, q[3:]


def test_prompt_structure():
    task = load_builtin("antonym")
    settings = PromptSettings(n_shots=5, n_prompts=20, seed=3)
    ps = icl_prompts(task, settings, split="test")
    assert len(ps) == 20
    for i in range(len(ps)):
        demos, query = _parse_prompt(ps.clean[i])
        assert query == ps.queries[i].input
        assert demos == [(d.input, d.output) for d in ps.demos[i]]
        assert len(demos) == 5
        # the query never appears among its own demos
        assert query not in [x for x, _ in demos]
        assert ps.zero_shot[i] == f"Q: {query}\nA:"
        assert ps.targets[i] == " " + ps.queries[i].output
        assert ps.targets[i].startswith(" ") and not ps.targets[i].startswith("  ")


def test_query_excluded_from_a_pool_that_contains_it():
    task = _task(4)
    ps = build_prompts(task.pairs, task.pairs, PromptSettings(n_shots=3, n_prompts=4))
    for query, demos in zip(ps.queries, ps.demos):
        assert query not in demos and len(set(demos)) == 3
    with pytest.raises(UserInputError, match="4 shots need at least 5 example pairs"):
        build_prompts(task.pairs, task.pairs, PromptSettings(n_shots=4, n_prompts=1))


def test_corrupted_prompts_shuffle_labels_only():
    task = load_builtin("antonym")
    ps = icl_prompts(task, PromptSettings(n_shots=6, n_prompts=30, seed=1))
    moved = 0
    for i in range(len(ps)):
        clean_demos, clean_q = _parse_prompt(ps.clean[i])
        bad_demos, bad_q = _parse_prompt(ps.corrupted[i])
        assert bad_q == clean_q
        assert [x for x, _ in bad_demos] == [x for x, _ in clean_demos]  # inputs in the same order
        assert Counter(y for _, y in bad_demos) == Counter(y for _, y in clean_demos)  # same labels
        moved += sum(b != c for (_, b), (_, c) in zip(bad_demos, clean_demos))
    # labels actually move: with distinct labels the shuffle is a derangement
    assert moved >= 0.9 * 6 * len(ps)


def test_zero_shots_gives_the_query_alone():
    ps = build_prompts(_task(5).pairs, _task(5).pairs, PromptSettings(n_shots=0, n_prompts=3))
    assert ps.clean == ps.corrupted == ps.zero_shot
    assert ps.demos == ((), (), ())


def test_same_seed_same_prompts_other_seed_other_prompts():
    task = load_builtin("country_capital")
    a = icl_prompts(task, PromptSettings(n_shots=4, n_prompts=10, seed=7))
    b = icl_prompts(task, PromptSettings(n_shots=4, n_prompts=10, seed=7))
    c = icl_prompts(task, PromptSettings(n_shots=4, n_prompts=10, seed=8))
    assert a == b
    assert a.clean != c.clean and a.corrupted != c.corrupted


def test_splits_are_disjoint_and_cover_a_big_task():
    task = load_builtin("antonym")
    s = split_task(task, seed=0)
    assert not s.overlap
    train, valid, test = (set(x) for x in (s.train, s.valid, s.test))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert train | valid | test == set(task.pairs)
    assert len(s.test) == round(0.4 * len(task)) and len(s.valid) == round(0.15 * len(task))
    assert split_task(task, seed=0) == s and split_task(task, seed=1) != s
    # test queries draw demos from train only
    ps = icl_prompts(task, PromptSettings(n_shots=5, n_prompts=10), split="test")
    assert set(ps.queries) <= test
    assert all(set(d) <= train for d in ps.demos)


def test_small_task_splits_overlap():
    small = _task(MIN_PAIRS_FOR_SPLIT - 1)
    s = split_task(small)
    assert s.overlap and set(s.train) == set(s.valid) == set(s.test) == set(small.pairs)
    assert not split_task(_task(MIN_PAIRS_FOR_SPLIT)).overlap


@pytest.mark.parametrize(
    "settings, pattern",
    [
        (PromptSettings(n_shots=limits.MAX_SHOTS + 1), r"Shots must be between 0 and"),
        (PromptSettings(n_shots=-1), r"Shots must be between 0 and"),
        (PromptSettings(n_shots=2, n_prompts=0), r"number of prompts must be between 1 and"),
        (PromptSettings(n_shots=2, n_prompts=limits.MAX_N_PROMPTS + 1), r"number of prompts"),
    ],
)
def test_bad_prompt_settings(settings, pattern):
    task = _task(40)
    with pytest.raises(UserInputError, match=pattern):
        build_prompts(task.pairs, task.pairs, settings)


def test_custom_template_and_separator():
    task = _task(6)
    s = PromptSettings(n_shots=2, n_prompts=1, template="{x} = {y};", separator=" | ")
    ps = build_prompts(task.pairs, task.pairs, s)
    d1, d2 = ps.demos[0]
    assert ps.clean[0] == f"{d1.input} = {d1.output}; | {d2.input} = {d2.output}; | {ps.queries[0].input} ="
