"""Pairs written by a language model (core.llm_pairs): a small OpenAI-compatible server on
127.0.0.1, started inside the tests, answers well, badly, with errors, slowly or not at all;
each path gives the right pairs or one clear line quickly, and the key never shows."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.errors import UserInputError
from core.llm_pairs import HOW_TO_CONFIGURE, Endpoint, clean_answer, write_pairs
from core.tasks import load_task_file, parse_lines, sift_lines

KEY = "sk-test-7f3c9a1e-never-show-me"
ROOT = Path(__file__).resolve().parents[1]


def pair(i: int) -> str:
    return f"word{i} -> WORD{i}"


def numbered_answer(n: int) -> str:
    """What chat models send whatever they are told: a preface, a fence, numbers, a repeat."""
    lines = [f"{i + 1}. {pair(i)}" for i in range(n)]
    lines.insert(2, "- word0 -> again")  # a repeated input
    lines.insert(4, "just some words")  # no separator
    return f"Here are {n} pairs:\n```\n" + "\n".join(lines) + "\n```"


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that gave up (the timeout tests) leaves a late answer writing into a closed
        socket; socketserver prints that traceback to stderr, into whichever test captures it
        then. Not an error here; anything else still is."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Server:
    """A threaded OpenAI-compatible chat-completions server; ``mode`` picks the next answer."""

    def __init__(self) -> None:
        self.mode = "good"
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                server.answer(self, body)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        mode = self.mode
        if handler.path != "/v1/chat/completions":
            return self.send(handler, 404, {"error": {"message": f"no route {handler.path}"}})
        asked = int(re.search(r"exactly (\d+)", body["messages"][-1]["content"]).group(1))
        if mode == "slow":
            time.sleep(3)
        if mode in ("good", "slow"):
            return self.send(handler, 200, self.completion(body, numbered_answer(asked)))
        if mode == "extra":
            return self.send(handler, 200, self.completion(body, "\n".join(pair(i) for i in range(asked + 3))))
        if mode == "no_lines":
            return self.send(handler, 200, self.completion(body, "I cannot do that."))
        if mode == "not_json":
            return self.send(handler, 200, b"<html>a login page</html>", "text/html")
        if mode == "no_choices":
            return self.send(handler, 200, {"object": "something.else"})
        if mode == "500":
            return self.send(handler, 500, {"error": {"message": f"internal error; your key was {KEY}"}})
        if mode == "401":
            return self.send(handler, 401, {"error": {"message": f"Incorrect API key provided: {KEY}"}})
        if mode == "429":
            return self.send(handler, 429, {"error": {"message": "slow down"}})
        raise AssertionError(mode)

    @staticmethod
    def completion(body: dict, content: str) -> dict:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        }

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, payload, content_type: str = "application/json") -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)


QUICK_S = 3.0  # "within a few seconds", with room for a busy test machine


@pytest.fixture(scope="module")
def server():
    import openai  # noqa: F401  (imported once here, so the timings below time the request only)

    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def llm(server):
    server.mode, server.requests[:] = "good", []
    return server


def endpoint(server: Server, **kw) -> Endpoint:
    return Endpoint(model="test-model", base_url=server.url, api_key=KEY, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(server_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FV_STUDIO_PAIRS_"))}
    if server_url is not None:
        env.update(OPENAI_BASE_URL=server_url, OPENAI_API_KEY=KEY, FV_STUDIO_PAIRS_MODEL="test-model")
    return env


# --- reading an answer with the typed-examples rules ----------------------------------------


def test_sift_lines_follows_parse_lines_and_reports_what_it_sets_aside():
    clean = "hot -> cold\nbig: small\nfast\tslow\n# a comment\n\nup, down"
    assert sift_lines(clean).rows == tuple((p.input, p.output) for p in parse_lines(clean).pairs)
    s = sift_lines("hot -> cold\nno separator here\nhot -> warm\n -> empty\nbig -> " + "x" * 201 + "\nup -> down")
    assert s.rows == (("hot", "cold"), ("up", "down")) and s.where == (1, 6)
    assert s.duplicates == ("Line 3: duplicate input 'hot' (first on line 1)",)
    assert s.bad_lines == (
        "Line 2 ('no separator here') has no separator",
        "Line 4: the input is empty",
        "Line 5: the output has 201 characters (the limit is 200)",
    )


def test_list_markers_and_fences_are_dropped_but_nothing_else():
    fenced = "```text\n1. a -> b\n12) c -> d\n- e -> f\n* g -> h\n```"
    assert clean_answer(fenced) == "\na -> b\nc -> d\ne -> f\ng -> h\n"  # line numbers kept
    assert clean_answer("1.5 -> 2.5\n-1 -> 1") == "1.5 -> 2.5\n-1 -> 1"  # numbers that are data stay


# --- the endpoint answers ---------------------------------------------------------------------


def test_a_good_answer_gives_the_pairs_and_reports_duplicates_and_bad_lines(llm, caplog):
    caplog.set_level(logging.DEBUG)
    written = write_pairs("word -> its upper case", 12, endpoint(llm))
    assert [(p.input, p.output) for p in written.task.pairs] == [(f"word{i}", f"WORD{i}") for i in range(12)]
    assert written.text().splitlines() == [pair(i) for i in range(12)]
    assert written.duplicates == ("Line 5: duplicate input 'word0' (first on line 3)",)
    assert written.bad_lines == ("Line 1: the output is empty", "Line 7 ('just some words') has no separator")
    assert written.summary() == "12 pairs from test-model; dropped 1 duplicate, 2 bad lines."
    [request] = llm.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "test-model"
    ask = request["body"]["messages"][-1]["content"]
    assert "word -> its upper case" in ask and "exactly 12" in ask and "`input -> output`" in ask
    assert KEY not in json.dumps(written.to_json()) and KEY not in repr(endpoint(llm))
    assert KEY not in caplog.text


def test_more_pairs_than_asked_keeps_the_first_n(llm):
    llm.mode = "extra"
    written = write_pairs("word -> its upper case", 5, endpoint(llm))
    assert written.text().splitlines() == [pair(i) for i in range(5)] and written.n_extra == 3
    assert written.summary() == "5 pairs from test-model; dropped 3 extra pairs."


@pytest.mark.parametrize(
    "mode, pattern",
    [
        (
            "no_lines",
            r"test-model wrote no usable `input -> output` lines: 0 usable pairs \(Line 1 \('I cannot do that\.'\) has no separator\)",
        ),
        ("not_json", r"did not send a chat completion .* ends in /v1"),
        ("no_choices", r"did not send a chat completion"),
        ("500", r"failed to answer \(HTTP 500: internal error; your key was \*\*\*\)"),
        ("401", r"refused the request \(HTTP 401: Incorrect API key provided: \*\*\*\): check OPENAI_API_KEY"),
        ("429", r"limiting requests \(HTTP 429: slow down\)"),
    ],
)
def test_bad_answers_and_errors_are_one_clear_line(llm, caplog, mode, pattern):
    caplog.set_level(logging.DEBUG)
    llm.mode = mode
    t0 = time.perf_counter()
    with pytest.raises(UserInputError, match=pattern) as err:
        write_pairs("word -> its upper case", 10, endpoint(llm))
    assert time.perf_counter() - t0 < QUICK_S
    message = str(err.value)
    assert "\n" not in message and KEY not in message and KEY not in caplog.text
    assert len(llm.requests) == 1  # no retries


def test_a_wrong_path_says_to_check_the_base_url(llm):
    bad = Endpoint(model="test-model", base_url=llm.url.removesuffix("/v1"), api_key=KEY)
    with pytest.raises(UserInputError, match=r"HTTP 404: no route /chat/completions\): check OPENAI_BASE_URL"):
        write_pairs("word -> its upper case", 10, bad)


def test_a_slow_server_times_out_quickly(llm):
    llm.mode = "slow"
    t0 = time.perf_counter()
    with pytest.raises(
        UserInputError, match=r"^http://127\.0\.0\.1:\d+ did not answer within 0\.5 s.*FV_STUDIO_PAIRS_TIMEOUT"
    ):
        write_pairs("word -> its upper case", 10, endpoint(llm, timeout_s=0.5))
    assert time.perf_counter() - t0 < QUICK_S


def test_a_closed_port_is_a_quick_connection_message():
    port = closed_port()
    t0 = time.perf_counter()
    with pytest.raises(
        UserInputError, match=rf"Cannot reach http://127\.0\.0\.1:{port} \(.*refused.*\): check OPENAI_BASE_URL"
    ):
        write_pairs(
            "word -> its upper case", 10, Endpoint(model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
        )
    assert time.perf_counter() - t0 < QUICK_S


# --- configuration and checks -----------------------------------------------------------------


def test_configuration_from_env_or_secrets_and_the_environment_wins():
    assert Endpoint.read(env={}) is None
    assert Endpoint.read(env={"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}) is None  # no model
    local = Endpoint.read(env={"OPENAI_BASE_URL": "http://u:pw@127.0.0.1:8080/v1", "FV_STUDIO_PAIRS_MODEL": "m"})
    assert local.api_key == "no-key" and local.timeout_s == 10 and local.where() == "http://127.0.0.1:8080"
    secrets = {"OPENAI_API_KEY": KEY, "FV_STUDIO_PAIRS_MODEL": "from-secrets", "FV_STUDIO_PAIRS_TIMEOUT": 3}
    hosted = Endpoint.read(secrets=secrets, env={})
    assert (hosted.model, hosted.base_url, hosted.api_key, hosted.timeout_s) == ("from-secrets", None, KEY, 3.0)
    assert hosted.where() == "the OpenAI API" and KEY not in repr(hosted)
    assert Endpoint.read(secrets=secrets, env={"FV_STUDIO_PAIRS_MODEL": "from-env"}).model == "from-env"


@pytest.mark.parametrize(
    "env, pattern",
    [
        ({"OPENAI_BASE_URL": "127.0.0.1:8080"}, "OPENAI_BASE_URL must be an http"),
        ({"FV_STUDIO_PAIRS_TIMEOUT": "soon"}, "FV_STUDIO_PAIRS_TIMEOUT must be"),
        ({"FV_STUDIO_PAIRS_TIMEOUT": "0"}, "FV_STUDIO_PAIRS_TIMEOUT must be"),
        ({"FV_STUDIO_PAIRS_TIMEOUT": "nan"}, "FV_STUDIO_PAIRS_TIMEOUT must be"),
    ],
)
def test_malformed_settings_name_the_variable(env, pattern):
    with pytest.raises(UserInputError, match=pattern):
        Endpoint.read(env={"OPENAI_API_KEY": KEY, "FV_STUDIO_PAIRS_MODEL": "m", **env})


def test_no_endpoint_says_how_to_configure_one_and_bad_values_are_checked_first(llm):
    with pytest.raises(UserInputError) as err:
        write_pairs("word -> its upper case", 10, None)
    assert str(err.value) == HOW_TO_CONFIGURE
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "FV_STUDIO_PAIRS_MODEL", "secrets"):
        assert name in HOW_TO_CONFIGURE
    for description, n, pattern in [
        ("  ", 10, "description is empty"),
        ("two\nlines", 10, "several lines"),
        ("x" * 301, 10, "the limit is 300"),
        ("ok", 1, "from 2 to 200"),
        ("ok", 201, "from 2 to 200"),
        ("ok", 2.5, "whole number"),
    ]:
        with pytest.raises(UserInputError, match=pattern):
            write_pairs(description, n, endpoint(llm))
    assert not llm.requests  # nothing was asked


# --- the CLI end to end -----------------------------------------------------------------------


def test_cli_writes_a_task_file_that_task_file_reads(llm, tmp_path):
    out = tmp_path / "pairs.json"
    cmd = [sys.executable, "-m", "core", "pairs", "--describe", "word -> its upper case", "--n", "8", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env_for(llm.url), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and KEY not in done.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["n_pairs"] == 8 and data["duplicates"] and data["bad_lines"] and KEY not in out.read_text()
    task = load_task_file(out)  # what `python -m core predict --task-file pairs.json` reads
    assert [(p.input, p.output) for p in task.pairs] == [(f"word{i}", f"WORD{i}") for i in range(8)]


def test_cli_errors_are_one_line_without_the_key(llm, monkeypatch, capsys):
    from core.cli import main

    argv = ["pairs", "--describe", "word -> its upper case", "--n", "8"]
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "FV_STUDIO_PAIRS_MODEL", "FV_STUDIO_PAIRS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: {HOW_TO_CONFIGURE}\n"
    monkeypatch.setenv("OPENAI_BASE_URL", llm.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FV_STUDIO_PAIRS_MODEL", "test-model")
    llm.mode = "500"
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "HTTP 500" in captured.err
    assert KEY not in captured.err
    monkeypatch.setenv("FV_STUDIO_PAIRS_TIMEOUT", "-1")
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: FV_STUDIO_PAIRS_TIMEOUT must be")


# --- the sidebar's "Describe a task" box ------------------------------------------------------


@pytest.mark.slow
def test_describe_a_task_fills_the_examples_box_and_waits(llm, tmp_path, monkeypatch):
    from app_helpers import button, errors, start

    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "FV_STUDIO_PAIRS_MODEL", "FV_STUDIO_PAIRS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    at = start(tmp_path, monkeypatch, task_source="Type examples", n_prompts=2)
    assert not at.exception
    assert HOW_TO_CONFIGURE in [i.value for i in at.sidebar.info]  # no endpoint: how to set one

    monkeypatch.setenv("OPENAI_BASE_URL", llm.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FV_STUDIO_PAIRS_MODEL", "test-model")
    at.run()
    at.sidebar.text_input(key="describe_text").set_value("word -> its upper case")
    at.sidebar.number_input(key="describe_n").set_value(6)
    button(at, "Write pairs").click().run()
    assert not at.exception and not errors(at)
    assert at.sidebar.text_area(key="typed_examples").value == "\n".join(pair(i) for i in range(6))
    captions = [c.value for c in at.sidebar.caption]
    assert "6 pairs from test-model; dropped 1 duplicate, 2 bad lines." in captions
    assert "dropped: Line 7 ('just some words') has no separator" in captions
    assert at.session_state["_context"].task is None  # nothing is computed until the user goes on
    assert not [f for f in at.dataframe if "prediction" in f.value.columns]
    kinds = ("markdown", "caption", "info", "error", "text_input", "text_area", "number_input")
    assert not [e for kind in kinds for e in getattr(at.sidebar, kind) if KEY in str(e.value)]

    button(at, "Use these examples").click().run()
    assert not at.exception and not errors(at)
    task = at.session_state["_context"].task
    assert [p.input for p in task.pairs] == [f"word{i}" for i in range(6)]

    llm.mode = "401"
    button(at, "Write pairs").click().run()
    [message] = [e.value for e in at.sidebar.error]
    assert "HTTP 401" in message and KEY not in message
    assert at.sidebar.text_area(key="typed_examples").value == "\n".join(pair(i) for i in range(6))  # kept
