"""`readers.attention_masks`: documents packed in one clm row never attend to each other; prefix-LM rows see their prefix both ways."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from corpus_tools import build, sample_subset
from readers.attention_masks import additive_mask, document_causal_mask, prefix_lm_mask, varlen_boundaries


@pytest.fixture(scope="module")
def packed_rows(tmp_path_factory, sample_docs):
    """Batches of real clm rows (best-fit packing, so also padding) from the reader, as a trainer gets them."""
    from readers.torch import TokenmillDataset

    directory = tmp_path_factory.mktemp("clm")
    _, version_dir = build(directory, "--input", sample_subset(directory, sample_docs), "--seq-len", 64, "--num-shards", 1, "--packing", "best_fit")
    return next(iter(torch.utils.data.DataLoader(TokenmillDataset(version_dir), batch_size=16)))


def test_the_document_mask_is_causal_inside_a_document_and_closed_between_documents(packed_rows):
    segments = packed_rows["segment_ids"]
    assert (segments.max(dim=1).values > 1).any(), "rows that hold several documents"
    mask = document_causal_mask(segments)[:, 0]
    length = segments.shape[1]
    query, key = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    same = segments[:, :, None] == segments[:, None, :]
    assert torch.equal(mask, same & (key <= query))
    assert not mask[(segments[:, :, None] != segments[:, None, :])].any()
    assert mask.any(dim=2).all(), "every query attends somewhere"
    assert torch.equal(additive_mask(mask) == 0, mask)


def test_a_document_packed_beside_another_gets_the_logits_it_gets_alone(packed_rows):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=8300, n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()
    row = int(torch.nonzero(packed_rows["segment_ids"].max(dim=1).values >= 2)[0])
    ids, segments, positions = (packed_rows[name][row : row + 1] for name in ("input_ids", "segment_ids", "positions"))
    with torch.no_grad():
        packed = model(input_ids=ids, attention_mask=document_causal_mask(segments), position_ids=positions).logits
        plain_causal = model(input_ids=ids, position_ids=positions).logits
        for segment in (1, 2):
            where = segments[0] == segment
            alone = model(input_ids=ids[:, where], position_ids=positions[:, where]).logits
            torch.testing.assert_close(packed[:, where], alone, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(plain_causal[:, where], alone, atol=1e-3), "a plain causal mask lets the second document see the first"


def test_varlen_boundaries_give_the_same_attention_as_the_mask(packed_rows):
    segments = packed_rows["segment_ids"][:4]
    batch, length = segments.shape
    cu_seqlens, max_seqlen = varlen_boundaries(segments)
    assert cu_seqlens.dtype == torch.int32 and cu_seqlens[0] == 0 and cu_seqlens[-1] == batch * length
    assert max_seqlen == int((cu_seqlens[1:] - cu_seqlens[:-1]).max()) <= length
    torch.manual_seed(1)
    q, k, v = (torch.randn(batch, 2, length, 8) for _ in range(3))
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=document_causal_mask(segments))
    flat = [t.transpose(1, 2).reshape(batch * length, 2, 8) for t in (q, k, v)]
    pieces = []
    for start, stop in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
        qs, ks, vs = (t[start:stop].transpose(0, 1) for t in flat)
        pieces.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True).transpose(0, 1))
    torch.testing.assert_close(torch.cat(pieces).reshape(batch, length, 2, 8).transpose(1, 2), masked)


def test_the_prefix_lm_mask_opens_the_prefix_both_ways():
    mask = prefix_lm_mask(torch.tensor([[3], [1]]), 5)[:, 0]
    assert mask.shape == (2, 5, 5)
    assert mask[0, 0].tolist() == [True, True, True, False, False]
    assert mask[0, 3].tolist() == [True, True, True, True, False]
    assert torch.equal(mask[1], torch.ones(5, 5, dtype=torch.bool).tril())
