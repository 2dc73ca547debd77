"""Block hooks shared by every tower: deep prompts written over a span of tokens, and capture."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clipsuite.core.towers.base import BlockHook, BlockHooks


def replace_span(prompt: torch.Tensor, start: int | None) -> BlockHook:
    """A hook writing ``prompt`` (``[n, W]``, or ``[B, n, W]`` per item) over tokens
    ``start .. start + n`` of the block input; ``start=None`` means the last ``n`` tokens (MaPLe's
    vision prompts sit at the end of the sequence)."""

    def hook(hidden: torch.Tensor) -> torch.Tensor:
        n = prompt.shape[-2]
        begin = hidden.shape[1] - n if start is None else start
        value = prompt.to(hidden.dtype)
        value = value.expand(hidden.shape[0], -1, -1) if value.dim() == 2 else value
        return torch.cat([hidden[:, :begin], value, hidden[:, begin + n:]], dim=1)

    return hook


def deep_prompt_hooks(prompts: Sequence[torch.Tensor | None], start: int | None) -> dict[int, BlockHook]:
    """``{i: replace_span(prompts[i], start)}`` for every ``prompts[i]`` that is not None."""
    return {i: replace_span(p, start) for i, p in enumerate(prompts) if p is not None}


def capture(into: list[torch.Tensor], inner: BlockHook | None = None) -> BlockHook:
    """A hook that appends the block input (after ``inner``, if given) to ``into`` and passes it on."""

    def hook(hidden: torch.Tensor) -> torch.Tensor:
        hidden = inner(hidden) if inner is not None else hidden
        into.append(hidden)
        return hidden

    return hook


def merge(*hook_sets: BlockHooks | None) -> dict[int, BlockHook]:
    """One hook mapping from several; hooks on the same block run in the order given."""
    merged: dict[int, BlockHook] = {}
    for hooks in hook_sets:
        for index, hook in (hooks or {}).items():
            if index in merged:
                first = merged[index]

                def chained(x: torch.Tensor, a: BlockHook = first, b: BlockHook = hook) -> torch.Tensor:
                    return b(a(x))

                merged[index] = chained
            else:
                merged[index] = hook
    return merged
