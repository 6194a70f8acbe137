"""Contrastive pairs (core.pairs): typed lines, CSV, JSON and text files, and their limits."""

from __future__ import annotations

import json

import pytest

from core import limits
from core.errors import UserInputError
from core.pairs import parse_pairs, parse_pairs_file


def test_typed_lines():
    text = "# a comment\nI love it. | I hate it.\n\n  good day |  bad day  \n"
    assert parse_pairs(text) == [("I love it.", "I hate it."), ("good day", "bad day")]
    assert parse_pairs("a | b | c") == [("a", "b | c")]  # the first bar splits


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no pairs found"),
        ("love | hate\nno bar here", "line 2 ('no bar here') has no '|'"),
        (" | hate", "line 1: the positive text is empty"),
        ("love |  ", "line 1: the negative text is empty"),
        ("x" * (limits.MAX_PROMPT_CHARS + 1) + " | y", f"the limit is {limits.MAX_PROMPT_CHARS}"),
        ("a | b\n" * (limits.MAX_CAA_PAIRS + 1), f"{limits.MAX_CAA_PAIRS + 1} pairs is too many"),
    ],
)
def test_typed_lines_rejected(text, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        parse_pairs(text)


def test_files():
    want = [("I love it.", "I hate it."), ("yes", "no")]
    csv = b"Positive,negative\nI love it.,I hate it.\nyes,no\n"
    assert parse_pairs_file(csv, "p.csv") == want
    as_objects = json.dumps([{"positive": p, "negative": n} for p, n in want]).encode()
    assert parse_pairs_file(as_objects, "p.json") == want
    assert parse_pairs_file(json.dumps({"pairs": [list(p) for p in want]}).encode(), "p.json") == want
    assert parse_pairs_file("I love it. | I hate it.\nyes | no".encode("utf-8-sig"), "p.txt") == want


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"\xff\xfe\x00bad", "p.txt", "not UTF-8 text"),
        (b"a\x00b", "p.txt", "looks like a binary file"),
        (b"input,output\na,b\n", "p.csv", "needs a header with 'positive' and 'negative' columns"),
        (b"[1, 2]", "p.json", "item 1 is neither"),
        (b'{"a": 1}', "p.json", "expected a JSON list"),
        (b"[{", "p.json", "invalid JSON at line 1"),
        (b'[["a", 3]]', "p.json", "not text"),
        (b"x" * (limits.MAX_UPLOAD_BYTES + 1), "p.txt", "the limit is"),
    ],
)
def test_files_rejected(data, name, message):
    with pytest.raises(UserInputError, match=message):
        parse_pairs_file(data, name)
