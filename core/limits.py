"""Every limit a user can run into, in one place, so the UI can show them and the CLI can
enforce the same numbers."""

from __future__ import annotations

MAX_PAIRS = 2000  # pairs in one task (typed, uploaded or built in)
MIN_PAIRS = 2  # a task needs a demo and a query
MAX_ENTRY_CHARS = 200  # one input or output
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a task or vector file
MAX_PROMPT_CHARS = 4000  # one free-form prompt
MAX_PROMPTS = 8  # free-form prompts steered at once
MAX_SHOTS = 32
MAX_N_PROMPTS = 200  # prompts per batch (attribution, evaluation)
MAX_NEW_TOKENS = 200
MAX_SAMPLES = 8  # samples per prompt when sampling
MAX_ABS_COEFF = 100.0  # steering coefficient
MAX_PROMPT_TOKENS = 1024  # tokens in one built prompt
MAX_CAA_PAIRS = 500
MAX_TEMPERATURE = 10.0  # sampling temperature
MAX_REPETITION_PENALTY = 10.0
MAX_SWEEP_CELLS = 100  # layers x coefficients in one steering sweep
MAX_SWEEP_LAYERS = 30  # one generate call per layer
MAX_COMPARE_TASKS = 8  # tasks compared at once (an attribution each)
MAX_WRITTEN_PAIRS = 200  # pairs asked of a language model at once (core.llm_pairs)
MAX_DESCRIPTION_CHARS = 300  # the one-line task description it is given
MAX_CACHED_RESULTS = 48  # results kept for all users of one app (least recently used go first)
MAX_CACHE_MB = 512  # the same results' tensors, in total
# the disk tier (core.result_files): least recently used go first
MAX_RESULT_FILES_MB = 2048  # result files kept on disk (all users and the CLI)
# shareable links (dashboard.links)
MAX_LINK_EXAMPLES_CHARS = 1500  # typed examples carried in a link's URL (longer ones are left out)


def as_table() -> list[tuple[str, str]]:
    """(what, limit) rows for the UI."""
    return [
        ("pairs in a task", f"{MIN_PAIRS} to {MAX_PAIRS}"),
        ("characters in one input or output", str(MAX_ENTRY_CHARS)),
        ("uploaded file size", f"{MAX_UPLOAD_BYTES // 1024} KiB"),
        ("characters in a free-form prompt", str(MAX_PROMPT_CHARS)),
        ("prompts steered at once", str(MAX_PROMPTS)),
        ("shots per prompt", str(MAX_SHOTS)),
        ("prompts per batch", str(MAX_N_PROMPTS)),
        ("tokens in one built prompt", str(MAX_PROMPT_TOKENS)),
        ("new tokens per generation", str(MAX_NEW_TOKENS)),
        ("samples per prompt", str(MAX_SAMPLES)),
        ("steering coefficient (absolute)", str(MAX_ABS_COEFF)),
        ("contrastive pairs", str(MAX_CAA_PAIRS)),
        ("sampling temperature", str(MAX_TEMPERATURE)),
        ("repetition penalty", str(MAX_REPETITION_PENALTY)),
        ("steering sweep cells (layers x coefficients)", str(MAX_SWEEP_CELLS)),
        ("tasks compared at once", str(MAX_COMPARE_TASKS)),
        ("pairs written by a language model at once", f"{MIN_PAIRS} to {MAX_WRITTEN_PAIRS}"),
        ("results kept in memory (all users)", f"{MAX_CACHED_RESULTS} or {MAX_CACHE_MB} MiB"),
        ("results kept on disk (all users and the CLI)", f"{MAX_RESULT_FILES_MB} MiB"),
        ("characters of typed examples in a shareable link", str(MAX_LINK_EXAMPLES_CHARS)),
    ]
