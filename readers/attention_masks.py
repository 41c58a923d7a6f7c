"""What attention kernels take for packed rows, from the features the shards hold.

A `clm` row packs several documents (`segment_ids` 1, 2, ... inside the row,
0 on padding); with a plain causal mask the second document attends to the
first. `document_causal_mask` gives the block-diagonal causal mask that
`torch.nn.functional.scaled_dot_product_attention` and Hugging Face models
(as a 4-D `attention_mask`, with `position_ids=positions`) take;
`varlen_boundaries` gives `cu_seqlens`/`max_seqlen` for variable-length
kernels (flash-attention's `flash_attn_varlen_func` and the like). For
decoder-only `prefix_lm` rows, `prefix_lm_mask` lets the prefix attend both
ways and the rest causally.
"""

from __future__ import annotations

import torch


def document_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """[B, 1, L, L] bool, True where a query may attend a key: same segment and not later.

    Padding (segment 0) attends only to padding, so no row of the mask is
    empty (an empty row makes attention NaN); the loss should skip it.
    """
    length = segment_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    return ((segment_ids[:, :, None] == segment_ids[:, None, :]) & causal)[:, None]


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A bool mask as the additive float mask some kernels take: 0 where allowed, the dtype's minimum elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def varlen_boundaries(segment_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """`cu_seqlens` (int32, [S + 1]) and `max_seqlen` of the batch's tokens flattened row by row, one sequence per segment.

    A sequence starts at each row start and wherever the segment id changes;
    a run of padding is a sequence of its own. Give `positions` as the
    position ids.
    """
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    first = starts.reshape(-1).nonzero().squeeze(1)
    cu_seqlens = torch.cat([first, torch.tensor([segment_ids.numel()], device=first.device)]).to(torch.int32)
    return cu_seqlens, int((cu_seqlens[1:] - cu_seqlens[:-1]).max())


def prefix_lm_mask(prefix_length: torch.Tensor, length: int) -> torch.Tensor:
    """[B, 1, L, L] bool for decoder-only prefix-LM rows: every query sees the whole prefix, and the keys up to itself."""
    positions = torch.arange(length, device=prefix_length.device)
    causal = positions[None, :, None] >= positions[None, None, :]
    in_prefix = positions[None, None, :] < prefix_length.reshape(-1, 1, 1)
    return (causal | in_prefix)[:, None]
