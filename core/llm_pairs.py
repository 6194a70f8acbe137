"""Pairs written by a language model: a one-line task description in, typed examples out.

Writing 40 good ``input -> output`` pairs by hand is the slow part of trying a new task on the
function-vector pages (Todd et al. 2023, *Function Vectors in Large Language Models*, built
their datasets partly this way). This module asks any OpenAI-compatible chat-completions
endpoint (a hosted service or a local server) for exactly ``n`` lines ``input -> output``,
through the official ``openai`` client, and reads the answer with the typed-examples rules of
:func:`core.tasks.sift_lines`: the same separators and checks, with repeated inputs and bad
lines set aside and reported instead of stopping at the first. List markers (``1.``, ``-``)
and code fences are dropped first, since chat models add them whatever they are told.

Configuration (environment variables, or Streamlit secrets with the same names, which the
dashboard passes in; environment variables win), in the manner of :mod:`core.server_config`:

- ``OPENAI_BASE_URL``: the endpoint, e.g. ``http://127.0.0.1:8080/v1`` for a local server
  (unset: the OpenAI API);
- ``OPENAI_API_KEY``: its key (a local server may need none);
- ``FV_STUDIO_PAIRS_MODEL``: the model to ask (required: endpoints share no model name);
- ``FV_STUDIO_PAIRS_TIMEOUT``: seconds to wait for the answer (default 10, at most 120).

The key is never shown, logged or written: :class:`Endpoint` leaves it out of its ``repr``,
messages name only the endpoint's scheme, host and port, and a server's own error text is
shortened and has the key masked before it reaches a person. Requests are not retried
(``max_retries=0``), so an unreachable or failing endpoint is one clear message within the
timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core import checks, limits
from core.errors import UserInputError
from core.server_config import read_setting
from core.tasks import Task, sift_lines, validate

BASE_URL_VAR = "OPENAI_BASE_URL"
API_KEY_VAR = "OPENAI_API_KEY"
MODEL_VAR = "FV_STUDIO_PAIRS_MODEL"
TIMEOUT_VAR = "FV_STUDIO_PAIRS_TIMEOUT"
VARIABLES = (BASE_URL_VAR, API_KEY_VAR, MODEL_VAR, TIMEOUT_VAR)

OPENAI_API_URL = "https://api.openai.com/v1"  # where no base URL means
DEFAULT_TIMEOUT_S = 10.0  # a hosted model writes 40 short pairs in a few seconds
MAX_TIMEOUT_S = 120.0
NO_KEY = "no-key"  # sent when only a base URL is set: local servers ignore the key, the client needs one
MAX_ANSWER_CHARS = 200_000  # an answer longer than this is cut before it is read

HOW_TO_CONFIGURE = (
    f"No language model is configured for writing pairs. Set {BASE_URL_VAR} (an OpenAI-compatible "
    f"endpoint, e.g. http://127.0.0.1:8080/v1 for a local server; unset means the OpenAI API), "
    f"{API_KEY_VAR} (its key, if it needs one) and {MODEL_VAR} (the model to ask), as environment "
    "variables or in Streamlit secrets (.streamlit/secrets.toml)."
)

SYSTEM_PROMPT = (
    "You write small datasets for in-context learning experiments. Answer with the pairs only: "
    "one pair per line, written `input -> output`, with no numbering, no bullets, no blank lines, "
    "no headings and no other text."
)

_LIST_MARKER = re.compile(r"^\s*(?:\d{1,4}[.)]|[-*\u2022])\s+")  # "12. ", "3) ", "- ", "* ", "• "


@dataclass(frozen=True)
class Endpoint:
    """Where to ask for pairs. ``api_key`` stays out of the ``repr`` (and so out of logs)."""

    model: str
    base_url: str | None = None  # None: the OpenAI API
    api_key: str = field(default="", repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def read(cls, secrets: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> Endpoint | None:
        """The endpoint from ``env`` (default: the process environment), then ``secrets``;
        None when none is configured (no model, or neither a base URL nor a key).

        A malformed value raises :class:`UserInputError` naming the variable.
        """

        def value(name: str) -> str | None:
            return read_setting(name, secrets, env)

        model, base_url, api_key = value(MODEL_VAR), value(BASE_URL_VAR), value(API_KEY_VAR)
        if model is None or (base_url is None and api_key is None):
            return None
        if base_url is not None:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserInputError(
                    f"{BASE_URL_VAR} must be an http(s) URL such as http://127.0.0.1:8080/v1 "
                    f"(got one starting {base_url[:12]!r})."
                )
        timeout_raw = value(TIMEOUT_VAR)
        timeout = DEFAULT_TIMEOUT_S
        if timeout_raw is not None:
            try:
                timeout = float(timeout_raw)
            except ValueError:
                timeout = float("nan")
            if not 0 < timeout <= MAX_TIMEOUT_S:  # NaN fails too
                raise UserInputError(
                    f"{TIMEOUT_VAR} must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g} (got {timeout_raw!r})."
                )
        return cls(model=model, base_url=base_url, api_key=api_key or NO_KEY, timeout_s=timeout)

    def where(self) -> str:
        """The endpoint in messages: scheme, host and port only (a URL may carry a password)."""
        if self.base_url is None:
            return "the OpenAI API"
        parts = urlsplit(self.base_url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"

    def redact(self, text: str) -> str:
        """``text`` as one short line with the key masked (a server may echo what it was sent)."""
        if len(self.api_key) >= 8:  # a shorter "key" (a local server's placeholder) would mangle words
            text = text.replace(self.api_key, "***")
        text = " ".join(text.split())
        return text if len(text) <= 160 else text[:157] + "..."


@dataclass(frozen=True)
class WrittenPairs:
    """A language model's pairs, read with the typed-examples rules, and what was set aside."""

    description: str
    n_asked: int
    model: str
    task: Task
    duplicates: tuple[str, ...]  # one message per repeated input, with its line in the answer
    bad_lines: tuple[str, ...]  # one message per line that is not a usable pair
    n_extra: int  # good pairs beyond the n asked for, dropped
    seconds: float

    def text(self) -> str:
        """The pairs as typed examples, for the editable examples box."""
        return self.task.to_lines()

    def summary(self) -> str:
        """One line: how many pairs came back and what was dropped."""
        got = f"{len(self.task)} pairs from {self.model}"
        got += f" (asked for {self.n_asked})" if len(self.task) != self.n_asked else ""
        dropped = [
            f"{n} {what}{'s' if n != 1 else ''}"
            for n, what in (
                (len(self.duplicates), "duplicate"),
                (len(self.bad_lines), "bad line"),
                (self.n_extra, "extra pair"),
            )
            if n
        ]
        return got + (f"; dropped {', '.join(dropped)}." if dropped else ".")

    def to_json(self) -> dict[str, Any]:
        """``pairs`` is a list of ``{"input", "output"}``: ``--task-file`` reads this JSON as a task."""
        return {
            "description": self.description,
            "model": self.model,
            "n_asked": self.n_asked,
            "n_pairs": len(self.task),
            "pairs": self.task.to_json(),
            "duplicates": list(self.duplicates),
            "bad_lines": list(self.bad_lines),
            "n_extra": self.n_extra,
            "summary": self.summary(),
            "seconds": self.seconds,
        }


def messages(description: str, n: int) -> list[dict[str, str]]:
    """The chat messages that ask for exactly ``n`` pairs of the described task."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": (
                f"Task: {description}\n"
                f"Write exactly {n} different examples of this task, one per line, each as `input -> output`. "
                "Inputs and outputs are short (a word or a few words); no input appears twice."
            ),
        },
    ]


def clean_answer(text: str) -> str:
    """The answer with code-fence lines blanked and leading list markers removed; nothing else
    changes, and line numbers stay those of the answer."""
    lines = text[:MAX_ANSWER_CHARS].splitlines()
    return "\n".join("" if line.strip().startswith("```") else _LIST_MARKER.sub("", line, count=1) for line in lines)


def read_answer(text: str, description: str, n: int, model: str, seconds: float = 0.0) -> WrittenPairs:
    """A model's answer as pairs: the first ``n`` good ones, and what was set aside.

    Fewer than two usable pairs is a :class:`UserInputError` that says why.
    """
    sifted = sift_lines(clean_answer(text))
    rows, where = sifted.rows[:n], sifted.where[:n]
    if len(rows) < limits.MIN_PAIRS:
        found = f"{len(rows)} usable pair" + ("" if len(rows) == 1 else "s")
        why = f" ({sifted.bad_lines[0]})" if sifted.bad_lines else ""
        raise UserInputError(
            f"{model} wrote no usable `input -> output` lines: {found}{why}. "
            "Try again, or describe the task more plainly."
        )
    task = validate("written", list(rows), f"Written by {model}: {description}", list(where))
    return WrittenPairs(
        description=description,
        n_asked=n,
        model=model,
        task=task,
        duplicates=sifted.duplicates,
        bad_lines=sifted.bad_lines,
        n_extra=len(sifted.rows) - len(rows),
        seconds=seconds,
    )


def write_pairs(description: str, n: int, endpoint: Endpoint | None) -> WrittenPairs:
    """Ask ``endpoint`` for ``n`` pairs of the described task (one request, no retries).

    Every failure (no endpoint, unreachable, timeout, refused key, HTTP error, an answer that
    is not a chat completion or has no pairs) is one line in a :class:`UserInputError`.
    """
    description = checks.check_description(description)
    n = checks.check_n_written_pairs(n)
    if endpoint is None:
        raise UserInputError(HOW_TO_CONFIGURE)
    import openai  # only when asked: the rest of core never needs it

    where = endpoint.where()
    client = openai.OpenAI(
        api_key=endpoint.api_key,
        base_url=endpoint.base_url or OPENAI_API_URL,  # never None: the client would read the env itself
        timeout=endpoint.timeout_s,
        max_retries=0,
    )
    t0 = time.perf_counter()
    try:
        completion = client.chat.completions.create(model=endpoint.model, messages=messages(description, n))
    except openai.APITimeoutError:
        raise UserInputError(
            f"{where} did not answer within {endpoint.timeout_s:g} s; try again, or raise {TIMEOUT_VAR} for a slow model."
        ) from None
    except openai.APIConnectionError as exc:
        reason = endpoint.redact(str(exc.__cause__ or exc)).rstrip(".")
        raise UserInputError(
            f"Cannot reach {where} ({reason}): check {BASE_URL_VAR} and that the server runs."
        ) from None
    except openai.APIStatusError as exc:
        raise UserInputError(_status_message(exc, endpoint)) from None
    except openai.OpenAIError as exc:
        raise UserInputError(f"Asking {where} failed: {endpoint.redact(str(exc))}") from None
    finally:
        client.close()
    seconds = time.perf_counter() - t0
    try:
        content = completion.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        content = None
    if not isinstance(content, str):
        raise UserInputError(
            f"{where} did not send a chat completion (no choices[0].message.content): is {BASE_URL_VAR} "
            "an OpenAI-compatible endpoint (it usually ends in /v1)?"
        )
    return read_answer(content, description, n, endpoint.model, seconds)


def _status_message(exc: Any, endpoint: Endpoint) -> str:
    """One line for an HTTP error answer: what it means here and what to check."""
    where, status = endpoint.where(), exc.status_code
    said = exc.body.get("message") if isinstance(exc.body, dict) else None
    said = endpoint.redact(str(said or exc.message or "")).rstrip(".")
    said = f": {said}" if said else ""
    if status in (401, 403):
        return f"{where} refused the request (HTTP {status}{said}): check {API_KEY_VAR}."
    if status == 404:
        return (
            f"{where} has no such endpoint or model (HTTP 404{said}): check {BASE_URL_VAR} "
            f"(it usually ends in /v1) and {MODEL_VAR} ('{endpoint.model}')."
        )
    if status == 429:
        return f"{where} is limiting requests (HTTP 429{said}): wait a little and try again."
    return f"{where} failed to answer (HTTP {status}{said})."
