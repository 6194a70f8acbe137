"""Sharing one model between users: the fair queue (core.turns), generation in pieces, per-request
random numbers and the thread-safe tokenizer (core.tokenizer). Tiny random models; the
tokenizer test uses the default model's tokenizer only (no weights)."""

from __future__ import annotations

import copy
import itertools
import threading
import time

import pytest
import torch
from conftest import random_direction

from core import steer, turns
from core.errors import Cancelled
from core.inference import encode, run_forward
from core.turns import ModelQueue

PROMPTS = ["The quick brown fox jumps over the lazy dog and", "Hi"]
N_LONG = 20  # more than steer.TOKENS_PER_TURN: the generation runs in several pieces


# --- the queue ---------------------------------------------------------------------------------


def _wait_until(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_queue_serves_in_arrival_order_and_reports_places():
    q = ModelQueue()
    order: list[int] = []
    places: dict[int, list[int]] = {i: [] for i in range(4)}
    q.acquire()  # the main thread holds the model while four callers line up

    def user(i: int) -> None:
        with q.turn(on_wait=lambda ahead, waited: places[i].append(ahead)):
            order.append(i)

    threads = []
    for i in range(4):
        t = threading.Thread(target=user, args=(i,))
        t.start()
        threads.append(t)
        _wait_until(lambda i=i: q.waiting() == i + 1)  # i is queued before i + 1 arrives
    _wait_until(lambda: all(places[i] for i in range(4)))
    q.release()
    for t in threads:
        t.join()
    assert order == [0, 1, 2, 3]
    # caller i had the holder and i earlier callers ahead of it
    assert [p[0] for p in places.values()] == [1, 2, 3, 4]


def test_queue_is_reentrant_and_a_cancelled_waiter_leaves_it():
    q = ModelQueue()
    with q.turn(), q.turn():  # a core function calling another that takes the turn
        assert q.held()
        errors = []

        def impatient() -> None:
            def on_wait(ahead, waited):
                raise Cancelled("left the queue")

            try:
                q.acquire(on_wait)
            except Cancelled as exc:
                errors.append(exc)

        t = threading.Thread(target=impatient)
        t.start()
        t.join(5)
        assert len(errors) == 1 and q.waiting() == 0
    assert not q.held()
    with pytest.raises(RuntimeError):
        q.release()


def test_waiting_display_is_used_by_default():
    q = ModelQueue()
    seen = []
    q.acquire()

    def user() -> None:
        with turns.waiting_display(lambda ahead, waited: seen.append(ahead)), q.turn():
            pass

    t = threading.Thread(target=user)
    t.start()
    _wait_until(lambda: seen)
    q.release()
    t.join()
    assert seen[0] == 1


# --- generation in pieces ------------------------------------------------------------------------


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("model", ["llama", "gpt2"])
@pytest.mark.parametrize("mode, n_pos, sample", [("last", None, False), ("prompt", 3, False), ("last", None, True)])
def test_generation_in_pieces_equals_one_piece(model, mode, n_pos, sample, request, monkeypatch):
    """Handing the key/value cache from piece to piece changes no token."""
    lm = request.getfixturevalue(model)
    kw = dict(sample=sample, temperature=0.8, top_p=0.9, repetition_penalty=1.3, n_samples=2, seed=5)
    v = random_direction(lm, n_pos)
    monkeypatch.setattr(steer, "TOKENS_PER_TURN", 1000)
    whole = steer.generate_pair(lm, PROMPTS, v, 1, 3.0, mode, N_LONG, **kw)
    monkeypatch.setattr(steer, "TOKENS_PER_TURN", 3)
    pieces = steer.generate_pair(lm, PROMPTS, v, 1, 3.0, mode, N_LONG, **kw)
    assert [(r.unsteered, r.steered) for r in pieces] == [(r.unsteered, r.steered) for r in whole]
    assert len(whole[0].unsteered[0]) > 0


def test_a_short_computation_runs_between_the_pieces_of_a_generation(llama):
    """A forward queued behind a long generation runs long before the generation ends."""
    enc = encode(llama, ["A short computation"])
    finished: dict[str, int] = {}
    tokens_done = [0]
    queued = threading.Event()

    def progress(fraction: float, message: str) -> None:
        tokens_done[0] += 1
        if tokens_done[0] == 2:
            threading.Thread(target=short).start()
            _wait_until(lambda: llama.lock.waiting() == 1)  # it is queued behind us
            queued.set()

    def short() -> None:
        run_forward(llama, enc)
        finished["at_token"] = tokens_done[0]

    n = 5 * steer.TOKENS_PER_TURN
    steer.generate_pair(llama, ["Once upon a time"], random_direction(llama), 1, 1.0, "last", n, progress=progress)
    _wait_until(lambda: "at_token" in finished)
    assert queued.is_set()
    # it waited for the rest of the first piece only
    assert finished["at_token"] <= steer.TOKENS_PER_TURN + 1 < n


@pytest.mark.usefixtures("single_thread")
def test_sampling_leaves_the_global_random_state_alone(llama):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    steer.generate_pair(llama, PROMPTS, random_direction(llama), 1, 2.0, "last", 4, sample=True, n_samples=2, seed=9)
    assert torch.equal(torch.get_rng_state(), before)


def test_two_users_sampling_at_once_get_what_they_get_alone(llama, monkeypatch):
    monkeypatch.setattr(steer, "TOKENS_PER_TURN", 2)  # many pieces: the two generations interleave
    kw = dict(sample=True, temperature=1.0, n_samples=2)
    v = random_direction(llama)
    alone = {s: steer.generate_pair(llama, PROMPTS, v, 1, 2.0, "last", 12, seed=s, **kw) for s in (1, 2)}
    together: dict[int, list] = {}
    pieces_seen: list[int] = []

    def user(seed: int) -> None:
        together[seed] = steer.generate_pair(
            llama,
            PROMPTS,
            v,
            1,
            2.0,
            "last",
            12,
            seed=seed,
            progress=lambda f, m: pieces_seen.append(seed),
            **kw,
        )

    threads = [threading.Thread(target=user, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone
    switches = sum(a != b for a, b in itertools.pairwise(pieces_seen))
    assert switches >= 2  # the two really interleaved


# --- the tokenizer ------------------------------------------------------------------------------------


def _hammer(tok, n_threads: int = 8, n_calls: int = 300) -> list[str]:
    """Threads mixing padded batches (as ``encode`` makes) with plain calls (as the tokens table
    makes). Each call reconfigures the fast tokenizer's padding first, so without a lock one
    thread's plain call can unpad another's batch: ragged rows, "Unable to create tensor"."""
    texts = ["hot -> cold\nbig -> small\nfast ->", "a", "The Eiffel Tower is in the city of Paris " * 8]
    alone = [len(tok(t)["input_ids"]) for t in texts]
    errors: list[str] = []
    start = threading.Barrier(n_threads)

    def work(i: int) -> None:
        start.wait()  # all at once: the more they overlap, the surer the failure without a lock
        try:
            for j in range(n_calls):
                if i % 2:
                    out = tok(texts, return_tensors="pt", padding=True)
                    if tuple(out["input_ids"].shape) != (3, max(alone)):
                        errors.append(f"padded batch of shape {tuple(out['input_ids'].shape)}")
                elif len(tok(texts[j % 3])["input_ids"]) != alone[j % 3]:
                    errors.append("a plain call came back padded")
        except Exception as exc:
            errors.append(repr(exc)[:120])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_shared_tokenizer_is_safe_from_many_threads(tokenizer):
    from core.tokenizer import SharedTokenizer

    raw = copy.deepcopy(tokenizer)  # conftest's: the default model's fast tokenizer
    raw.padding_side, raw.pad_token = "left", raw.eos_token
    # a race: usually the first round fails; a busy machine may need a few more
    assert any(_hammer(raw) for _ in range(10)), "the unprotected tokenizer did not fail: this test would prove nothing"
    shared = SharedTokenizer.copy_of(raw)
    assert [e for _ in range(3) for e in _hammer(shared)] == []


def test_loaded_models_hand_out_a_shared_copy(llama):
    from core.tokenizer import SharedTokenizer

    assert isinstance(llama.tokenizer, SharedTokenizer)
    assert llama.tokenizer.wrapped is not llama.nn.tokenizer  # nnsight keeps its own
    assert llama.tokenizer.padding_side == "left"
    assert llama.tokenizer("Hi")["input_ids"] == llama.nn.tokenizer("Hi")["input_ids"]


# --- attribution in turns -----------------------------------------------------------------------------


def test_a_short_computation_runs_between_patching_passes(llama):
    """Head attribution takes one turn per patching pass: a forward queued behind it runs
    before the attribution ends."""
    from core.attribution import clean_stats, indirect_effects
    from core.prompts import PromptSettings, build_prompts, split_task
    from core.tasks import validate

    words = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("old", "new"), ("wet", "dry")]
    settings = PromptSettings(n_shots=3, n_prompts=4, seed=0)
    task = validate("tiny", words)
    splits = split_task(task, settings.seed)
    prompts = build_prompts(splits.train, splits.train, settings)
    stats = clean_stats(llama, prompts)
    enc = encode(llama, ["A short computation"])
    reports: list[str] = []
    finished: dict[str, int] = {}

    def progress(fraction: float, message: str) -> None:
        reports.append(message)
        if len(reports) == 1:
            threading.Thread(target=lambda: (run_forward(llama, enc), finished.setdefault("at", len(reports)))).start()
            # between two passes: times out if the attribution kept the model for all its passes
            _wait_until(lambda: "at" in finished)

    indirect_effects(llama, prompts, stats.mean_heads, metric="logprob", progress=progress)
    assert finished["at"] == 1 < len(reports), reports
