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
