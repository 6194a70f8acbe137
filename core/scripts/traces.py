"""The traced computations the analysis scripts share, as source text, and the prompt data
they inline.

Every number of the analysis pages comes from a few last-token measurements, written here
once in the course's style (``model.trace``, ``.save()``, the edit written where it happens):

* ``last_logits(prompts, layer, vector)``: the logits at the last token, optionally with a
  vector added to the residual stream after block ``layer`` at the last token (where the app
  adds h-vectors and function vectors, :mod:`core.layer_sweep`);
* ``accuracy(prompts, targets, ...)``: top-1 accuracy on the answers' first tokens, and
  ``accuracy_by_layer``: the same with one vector per layer, the layers batched as invokes;
* ``mean_activations(prompts)``: each head's output (its slice of the out-projection input)
  and each block's output at the last token, averaged over prompts (:mod:`core.attribution`);
* ``target_metric(logits, target_ids, metric)``: probability or log-probability of the answer.

The app's fast path reuses a prompt's key/value cache and batches edits; these plain forwards
give the same numbers (to about 1e-5) and are the reference the app is tested against.
"""

from __future__ import annotations

from core.prompts import PromptSet, PromptSettings
from core.scripts.common import literal
from core.tasks import Task

MEASUREMENTS = '''


def last_logits(prompts, layer=None, vector=None):
    """The logits at each prompt's last token: [batch, d_vocab]. With `vector` [d_model], it is
    added to the residual stream after block `layer`, at the last token only. nnsight pads the
    batch on the left (pad = eos) and counts each row's positions from its first real token."""
    with model.trace(prompts, **LAST):
        if vector is not None:
            resid(layer)[:, -1] += vector.to(hf.device, hf.dtype)  # [batch, d_model] at the last position
        logits = unembed().output[:, -1].save()  # [batch, d_vocab]
    return logits.float().cpu()


def top1_accuracy(logits, targets):
    """How often the most likely next token is the answer's first token."""
    target_ids = torch.tensor([first_token(t) for t in targets])  # [batch]
    return float((logits.argmax(-1) == target_ids).float().mean())


def accuracy(prompts, targets, layer=None, vector=None):
    """Top-1 accuracy of `prompts`, optionally with `vector` added after block `layer`."""
    return top1_accuracy(last_logits(prompts, layer, vector), targets)


def accuracy_by_layer(prompts, targets, vectors):
    """Top-1 accuracy with each `(layer, vector)` added at the last token: one forward, one
    invoke (a copy of the prompts in the batch) per layer, each with its own edit."""
    saved = []  # a list made before the trace keeps what each invoke saves
    with model.trace(**LAST) as tracer:
        for layer, vector in vectors:
            with tracer.invoke(prompts):
                resid(layer)[:, -1] += vector.to(hf.device, hf.dtype)  # only this invoke's rows are edited
                saved.append(unembed().output[:, -1].save())  # [batch, d_vocab]
    return [top1_accuracy(logits.float().cpu(), targets) for logits in saved]


def target_metric(logits, target_ids, metric):
    """Probability ("prob") or log-probability ("logprob") of each row's answer: [batch]."""
    logprob = logits.log_softmax(-1).gather(-1, target_ids[:, None])[:, 0]
    return logprob.exp() if metric == "prob" else logprob
'''

MEAN_ACTIVATIONS = '''

def mean_activations(prompts):
    """One trace over the clean in-context prompts, reading at the last token each head's
    output (its d_head slice of the out-projection input) and each block's output. Returns
    (mean_heads [n_layers, n_heads, d_head], hvector [n_layers, d_model], logits [batch, d_vocab])."""
    z_saved, h_saved = [], []  # lists made before the trace keep what is saved inside it
    with model.trace(prompts, **LAST):
        for layer in range(N_LAYERS):  # in execution order: attention, then the block's output
            z_saved.append(out_proj(layer).input[:, -1].save())  # [batch, n_heads * d_head]
            h_saved.append(resid(layer)[:, -1].save())  # [batch, d_model]
        logits = unembed().output[:, -1].save()  # [batch, d_vocab]
    mean_heads = torch.stack([z.float().cpu().mean(0) for z in z_saved]).view(N_LAYERS, N_HEADS, D_HEAD)
    hvector = torch.stack([h.float().cpu().mean(0) for h in h_saved])  # the h-vector of every layer
    return mean_heads, hvector, logits.float().cpu()
'''


def prompts_block(prefix: str, prompts: PromptSet, kinds: tuple[str, ...], comment: str) -> str:
    """Source assigning ``{PREFIX}_{KIND}`` lists (kinds of :class:`PromptSet`: ``clean``,
    ``corrupted``, ``zero_shot``, ``targets``) with a comment on where they come from."""
    lines = [f"# {comment}"]
    for kind in kinds:
        lines.append(f"{prefix}_{kind.upper()} = {literal(list(getattr(prompts, kind)))}")
    return "\n".join(lines)


def settings_block(task: Task, settings: PromptSettings) -> str:
    """Source for the task name and the prompt settings the app used (reported in the JSON)."""
    return f"TASK = {task.name!r}\nSETTINGS = {literal(settings.to_dict())}"


MEANS_DOC = (
    "Each head's output at the last token (its slice of the attention out-projection's input) "
    "is averaged over clean in-context prompts of the task (Todd et al. 2023, section 2.2)."
)


INDIRECT_EFFECTS = '''

def indirect_effects(corrupted, mean_heads, target_ids, metric, layers=None):
    """The causal indirect effect of every head of `layers` (all by default) on the corrupted
    prompts: its last-token output replaced by its clean mean (`mean_heads` [n_layers, n_heads,
    d_head]), the rise of the answer's `metric` averaged over prompts. One trace per layer, one
    invoke (a copy of the batch) per head: a whole forward per head, the plain method (the app
    reuses the prompts' key/value cache and runs only the last token). [n_layers][n_heads],
    None where not computed."""
    baseline = target_metric(last_logits(corrupted), target_ids, metric)  # [batch], no patch
    cie = [[None] * N_HEADS for _ in range(N_LAYERS)]
    for layer in range(N_LAYERS) if layers is None else layers:
        saved = []  # one saved logits per head
        with model.trace(**LAST) as tracer:
            for head in range(N_HEADS):
                with tracer.invoke(corrupted):
                    z = out_proj(layer).input  # [batch, pos, n_heads * d_head]: the heads side by side
                    z[:, -1, head * D_HEAD : (head + 1) * D_HEAD] = mean_heads[layer, head].to(hf.device, hf.dtype)
                    saved.append(unembed().output[:, -1].save())  # [batch, d_vocab]
        for head, logits in enumerate(saved):
            cie[layer][head] = float((target_metric(logits.float().cpu(), target_ids, metric) - baseline).mean())
    return cie


def top_heads(scores, k):
    """The `k` heads of largest score in `scores` [n_layers, n_heads], largest first, as
    [layer, head] (ranked as FV Studio ranks them)."""
    order = torch.argsort(torch.as_tensor(scores).flatten(), descending=True)[:k]
    return [list(divmod(int(i), N_HEADS)) for i in order]
'''
"""Source of ``indirect_effects(corrupted, mean_heads, target_ids, metric, layers)``, the CIE grid
(Todd et al. 2023, section 2.2), and ``top_heads(scores, k)``; needs :data:`MEASUREMENTS`."""


SCORES_BY_LAYER = '''

def scores_by_layer(prompts, targets, vectors):
    """(top-1 accuracy, mean log-probability of the answer's first token), one of each per
    `(layer, vector)` added at the last token: one forward, one invoke per vector. Each invoke
    keeps its rows' top token and target log-probability ([batch] each), not the logits."""
    target_ids = torch.tensor([first_token(t) for t in targets])  # [batch]
    saved = []  # a list made before the trace keeps what each invoke saves
    with model.trace(**LAST) as tracer:
        for layer, vector in vectors:
            with tracer.invoke(prompts):
                resid(layer)[:, -1] += vector.to(hf.device, hf.dtype)  # only this invoke's rows
                logits = unembed().output[:, -1].float()  # [batch, d_vocab]
                logprob = target_metric(logits, target_ids.to(logits.device), "logprob")  # [batch]
                saved.append((logits.argmax(-1).save(), logprob.save()))
    accuracies = [float((top.cpu() == target_ids).float().mean()) for top, _ in saved]
    logprobs = [float(logprob.cpu().mean()) for _, logprob in saved]
    return accuracies, logprobs
'''
"""Source of ``scores_by_layer`` (what :func:`core.layer_sweep.scores_sweep` measures: accuracy
and mean first-token log-probability per vector). Goes after :data:`MEASUREMENTS`."""

GREEDY_PAIRS = '''

def greedy_pairs(prompts, layer, vector, max_new_tokens):
    """Greedy continuations of `prompts` without and with `vector` [d_model] added after block
    `layer` at the newest token of every step (step 0: the last prompt token): ONE batched
    generate, rows [unsteered..., steered...], the unsteered rows getting 0 * vector."""
    n = len(prompts)
    batch = model.tokenizer(list(prompts) * 2, return_tensors="pt", padding=True)  # left padding
    row_coeffs = torch.tensor([0.0] * n + [1.0] * n)  # [2 * n]
    vectors = {layer: vector[None]}  # [1, d_model]: one position, the "last" mode
    new_ids, _ = steered_generate(batch["input_ids"], batch["attention_mask"], row_coeffs, vectors, max_new_tokens, {})
    texts = texts_of(new_ids)
    return texts[:n], texts[n:]
'''
"""Source of ``greedy_pairs``, the generations :func:`core.steer.generate_greedy_pairs` makes.
Needs ``steered_generate`` and ``texts_of`` (:func:`core.scripts.steering.generate_block`
in the ``"last"`` mode)."""

ANSWER_MATCH = '''

def strip_answer(text):
    """Spaces and punctuation (Unicode categories P*) removed at both ends."""
    start, end = 0, len(text)

    def stripped(ch):
        return ch.isspace() or unicodedata.category(ch).startswith("P")

    while start < end and stripped(text[start]):
        start += 1
    while end > start and stripped(text[end - 1]):
        end -= 1
    return text[start:end]


def is_match(generated, answer):
    """Whether a generation IS the answer: cut at its first stop (STOPS), both stripped,
    compared exactly (ignoring case unless CASE_SENSITIVE)."""
    cut = min((i for i in (generated.find(s) for s in STOPS) if i >= 0), default=len(generated))
    got, want = strip_answer(generated[:cut]), strip_answer(answer)
    return got == want if CASE_SENSITIVE else got.casefold() == want.casefold()


def answer_budget(targets):
    """New tokens to generate: the longest answer's token count plus one."""
    return max(len(tokenizer(t, add_special_tokens=False).input_ids) for t in targets) + 1
'''
"""Source of the whole-answer match of :mod:`core.generation_scoring` (``strip_answer``,
``is_match``, ``answer_budget``); needs ``import unicodedata`` and :func:`answer_settings_block`."""


def answer_settings_block(task: Task, settings: PromptSettings) -> str:
    """Source for ``STOPS`` and ``CASE_SENSITIVE``, as :mod:`core.generation_scoring` derives
    them from the template and the task's pairs."""
    from core.generation_scoring import answer_stops, is_case_task

    stops = list(answer_stops(settings.template, settings.separator))
    case = is_case_task(task)
    return (
        f"STOPS = {literal(stops)}  # a line break, and the template's text after {{y}} and separator when not blank\n"
        f"CASE_SENSITIVE = {case!r}  # {'a task about letter case' if case else 'matching ignores case'}"
    )
