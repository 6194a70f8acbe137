"""The last-token intervention engine that every sweep and patching experiment uses.

It rests on one fact: an edit at the *last* token of a causal model leaves every earlier
position unchanged. So the prompt prefix runs once, its key/value cache is kept, and each
edited configuration ("group" of :class:`Edit`) only runs the final token, with many groups
batched into one forward as extra columns at the last position. The plain path
(``use_cache=False``) runs the whole prompt for every group; it is the reference, and the path
used for remote (NDIF) execution. Function vectors (Todd et al. 2023) and head attribution are
built on :func:`last_token_scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from core.checks import check_heads, check_layer
from core.inference import Encoded, Progress, forward_kwargs, no_progress, prompt_chunk_size, prompt_slices, row_budget
from core.models import LoadedModel

# bytes of last-position logits one batched pass may produce
LOGIT_BUDGET = 256 * 1024 * 1024


@dataclass(frozen=True)
class Edit:
    """One intervention at the last token.

    ``site="head"`` edits one head's slice of the out-projection input (``value [d_head]``);
    ``site="resid"`` edits the output of block ``layer`` (``value [d_model]``). ``value`` may
    also be ``[batch, d]`` (one value per prompt). ``add=False`` replaces, ``add=True`` adds.
    """

    layer: int
    site: str
    value: torch.Tensor
    head: int = -1
    add: bool = False


@dataclass
class Scores:
    logprob: torch.Tensor  # [n_groups, batch]: log-probability of each row's target token
    top1: torch.Tensor  # [n_groups, batch]: the argmax token

    @property
    def prob(self) -> torch.Tensor:
        return self.logprob.exp()


def _apply_edits(lm: LoadedModel, edits_by_group: Sequence[Sequence[Edit]], layout: str) -> None:
    """Inside a trace: apply each group's edits where that group lives.

    ``layout="cols"``: group ``g`` is column ``g`` of the last-token block ``[batch, n_groups]``
    (the fast path); ``layout="rows"``: group ``g`` is the last position of rows
    ``prompt * n_groups + g`` (the plain path).
    """
    arch = lm.arch
    n_groups = len(edits_by_group)
    by_layer: dict[int, list[tuple[int, Edit]]] = {}
    for g, edits in enumerate(edits_by_group):
        for e in edits:
            by_layer.setdefault(e.layer, []).append((g, e))

    def where(t: torch.Tensor, g: int) -> tuple:
        if layout == "cols":
            return (slice(None), g)
        n_rows = t.shape[0] // n_groups
        return (torch.arange(n_rows) * n_groups + g, -1)

    d = arch.d_head
    for layer in sorted(by_layer):
        items = by_layer[layer]
        head_items = [(g, e) for g, e in items if e.site == "head"]
        resid_items = [(g, e) for g, e in items if e.site == "resid"]
        if head_items:  # requests follow execution order: the out-projection input first
            z = arch.out_proj(lm.nn, layer).input  # [rows, pos, n_heads * d_head]
            for g, e in head_items:
                idx = where(z, g) + (slice(e.head * d, (e.head + 1) * d),)
                value = e.value.to(z.device, z.dtype)
                if e.add:
                    z[idx] += value
                else:
                    z[idx] = value
        if resid_items:
            h = arch.block_output(lm.nn, layer)  # [rows, pos, d_model]
            for g, e in resid_items:
                idx = where(h, g)
                value = e.value.to(h.device, h.dtype)
                if e.add:
                    h[idx] += value
                else:
                    h[idx] = value


def _check_edits(lm: LoadedModel, groups: Sequence[Sequence[Edit]]) -> None:
    """Each edit's site, layer and head, with core.checks' messages."""
    for edits in groups:
        for e in edits:
            if e.site not in ("head", "resid"):
                raise ValueError(f"unknown site {e.site}")
            if e.site == "head":
                check_heads(lm, [(e.layer, e.head)])
            else:
                check_layer(e.layer, lm.arch.n_layers)


def _slice_values(edits: Sequence[Edit], sl: slice) -> list[Edit]:
    """Per-prompt values follow the prompt chunk."""
    return [Edit(e.layer, e.site, e.value[sl] if e.value.dim() == 2 else e.value, e.head, e.add) for e in edits]


def _start_layer(edits: Sequence[Edit]) -> int:
    return min(e.layer for e in edits)


def _group_mask(prefix_mask: torch.Tensor, n_groups: int, dtype: torch.dtype) -> torch.Tensor:
    """A 4D additive mask ``[batch, 1, n_groups, prefix + n_groups]``: each group's query sees
    the real prefix tokens and itself, never the other groups."""
    n, t = prefix_mask.shape
    device = prefix_mask.device
    allowed = torch.zeros(n, 1, n_groups, t + n_groups, dtype=torch.bool, device=device)
    allowed[..., :t] = prefix_mask.bool()[:, None, None, :]
    allowed[..., t:] = torch.eye(n_groups, dtype=torch.bool, device=device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def _score(lm: LoadedModel, targets: torch.Tensor, n_last: int) -> tuple:
    """Inside a trace: saved (target log-prob, argmax) at the last ``n_last`` positions,
    each ``[batch, n_last]``; ``targets`` is ``[batch]``."""
    logits = lm.arch.unembed(lm.nn).output[:, -n_last:].float()
    index = targets.to(logits.device)[:, None, None].expand(-1, n_last, 1)
    picked = (logits.gather(-1, index)[..., 0] - logits.logsumexp(-1)).save()
    best = logits.argmax(-1).save()
    return picked, best


MIN_GROUPS_PER_PASS = 8  # below this, a pass takes groups that start at a later layer


def _plan_passes(groups: Sequence[Sequence[Edit]], order: list[int], per_pass: int, use_cache: bool) -> list[list[int]]:
    """Split edited groups (sorted by first layer) into passes. A pass runs from its first
    group's start layer, so a new pass begins where the start layer changes once the current
    pass is big enough to be worth its own forward."""
    passes: list[list[int]] = []
    for g in order:
        if passes:
            cur = passes[-1]
            same_start = not use_cache or _start_layer(groups[g]) == _start_layer(groups[cur[0]])
            if len(cur) < per_pass and (same_start or len(cur) < MIN_GROUPS_PER_PASS):
                cur.append(g)
                continue
        passes.append([g])
    return passes


def last_token_scores(
    lm: LoadedModel,
    enc: Encoded,
    target_ids: torch.Tensor,
    groups: Sequence[Sequence[Edit]],
    use_cache: bool = True,
    max_groups_per_pass: int = 512,
    progress: Progress = no_progress,
) -> Scores:
    """Score every group of last-token edits: log-prob of the target and the top-1 token.

    ``groups[g]`` is a list of edits applied together; an empty list is the unedited run.
    Prompts run in chunks (bounded memory); each chunk runs on the fast path
    (:func:`_fast_chunk`, ``use_cache``) or the plain one (:func:`_plain_chunk`, the
    reference, and remote). Each pass takes its own turn on the shared model, so other users'
    computations run between passes (core.turns); nothing but the pass changes the model.
    """
    _check_edits(lm, groups)
    if lm.spec.remote:
        use_cache = False  # a cache cannot travel to a remote server
    n_groups = len(groups)
    logprob = torch.empty(n_groups, len(enc))
    top1 = torch.empty(n_groups, len(enc), dtype=torch.long)
    p_chunks = prompt_slices(len(enc), prompt_chunk_size(lm, enc))
    empty = [g for g in range(n_groups) if not groups[g]]
    # by first edited layer, so each pass skips as many blocks as it can
    edited = sorted((g for g in range(n_groups) if groups[g]), key=lambda g: _start_layer(groups[g]))
    done = [0]
    for p_sl in p_chunks:
        sub = enc.rows(p_sl)
        n_rows, width = sub.input_ids.shape
        # a chunk of one-token prompts has no prefix to cache (chunks are trimmed of padding)
        cached = use_cache and width >= 2
        # groups per pass: bounded by the logits it makes (n_rows x n_groups x d_vocab)
        per_pass = max(1, min(max_groups_per_pass, LOGIT_BUDGET // max(1, n_rows * lm.arch.d_vocab * 4)))
        if not cached:
            # the plain path repeats every row per group: bound rows, not prompts
            per_pass = min(per_pass, max(1, row_budget(lm, enc) // n_rows))
        passes = _plan_passes(groups, edited, per_pass, cached)
        total = len(p_chunks) * (len(passes) + 1)

        def step(total: int = total) -> None:
            done[0] += 1
            progress(done[0] / total, f"pass {done[0]}/{total}")

        edits = [[_slice_values(groups[g], p_sl) for g in members] for members in passes]
        run_chunk = _fast_chunk if cached else _plain_chunk
        with torch.no_grad():
            (base_lp, base_top), *scored = run_chunk(lm, sub, target_ids[p_sl], edits, step)
        for g in empty:
            logprob[g, p_sl], top1[g, p_sl] = base_lp[0], base_top[0]
        for members, (lp, top) in zip(passes, scored):
            logprob[members, p_sl], top1[members, p_sl] = lp, top
    return Scores(logprob=logprob, top1=top1)


# One chunk of prompts: the unedited run, then one pass per list of groups. Each returns
# [(logprob [n_groups_in_pass, n_rows], top1 [n_groups_in_pass, n_rows])], the unedited run
# first (one group), and calls ``step`` after every pass.
ChunkScores = list[tuple[torch.Tensor, torch.Tensor]]


def _fast_chunk(
    lm: LoadedModel, sub: Encoded, targets: torch.Tensor, passes: list[list[list[Edit]]], step: Callable[[], None]
) -> ChunkScores:
    """The prefix (all but the last token) runs once and its key/value cache is kept. One
    unedited last-token pass records every block's output. Then the groups of a pass share one
    forward as extra *columns* at the last position: the last token is fed ``n_groups`` times,
    all at the same position id, under a mask that lets each copy see the prefix and itself
    only. So every column computes exactly the last token's forward, with its own edits, and
    the cache is never copied. A pass whose earliest edit is at layer ``l`` skips blocks
    ``< l`` and is handed their recorded outputs, which no edit at ``l`` can change."""
    arch, kw, dtype = lm.arch, forward_kwargs(lm), lm.dtype
    with lm.locked():
        out = lm.hf(
            input_ids=sub.input_ids[:, :-1],
            attention_mask=sub.attention_mask[:, :-1],
            position_ids=sub.position_ids[:, :-1],
            use_cache=True,
            **kw,
        )
        cache = getattr(out, "past_key_values", None) or out.cache
        base_resid: list = []
        with lm.trace(
            input_ids=sub.input_ids[:, -1:],
            attention_mask=_group_mask(sub.attention_mask[:, :-1], 1, dtype),
            position_ids=sub.position_ids[:, -1:],
            past_key_values=cache,
            use_cache=True,
            **kw,
        ):
            for layer in range(arch.n_layers):
                base_resid.append(arch.block_output(lm.nn, layer).save())
            picked, best = _score(lm, targets, 1)
        cache.crop(-1)
    results: ChunkScores = [(picked.float().cpu().T, best.cpu().T)]  # [1, n_rows]
    step()
    for groups in passes:
        n_g = len(groups)
        start = _start_layer(groups[0])
        inputs = {
            "input_ids": sub.input_ids[:, -1:].expand(-1, n_g),
            "attention_mask": _group_mask(sub.attention_mask[:, :-1], n_g, dtype),
            "position_ids": sub.position_ids[:, -1:].expand(-1, n_g),
            "past_key_values": cache,
            "use_cache": True,
        }
        if "logits_to_keep" in kw:
            inputs["logits_to_keep"] = n_g
        with lm.locked():
            with lm.trace(**inputs):
                blocks = arch.blocks(lm.nn)
                for j in range(start):
                    blocks[j].skip(arch.as_block_output(base_resid[j].expand(-1, n_g, -1)))
                _apply_edits(lm, groups, "cols")
                picked, best = _score(lm, targets, n_g)
        for layer in cache.layers[start:]:  # skipped blocks added nothing
            layer.crop(-n_g)
        results.append((picked.float().cpu().T, best.cpu().T))  # [n_g, n_rows]
        step()
    return results


def _plain_chunk(
    lm: LoadedModel, sub: Encoded, targets: torch.Tensor, passes: list[list[list[Edit]]], step: Callable[[], None]
) -> ChunkScores:
    """Every group runs the whole prompt as its own rows (prompt-major: row = prompt * n_g + group)."""
    kw = forward_kwargs(lm)
    n_rows = len(sub)
    with lm.locked():
        with lm.trace(**sub.as_inputs(), **kw):
            picked, best = _score(lm, targets, 1)
    results: ChunkScores = [(picked.float().cpu().T, best.cpu().T)]  # [1, n_rows]
    step()
    for groups in passes:
        n_g = len(groups)
        inputs = {k: v.repeat_interleave(n_g, 0) for k, v in sub.as_inputs().items()}
        with lm.locked():
            with lm.trace(**inputs, **kw):
                _apply_edits(lm, groups, "rows")
                picked, best = _score(lm, targets.repeat_interleave(n_g), 1)
        results.append((picked[:, 0].float().cpu().view(n_rows, n_g).T, best[:, 0].cpu().view(n_rows, n_g).T))
        step()
    return results
