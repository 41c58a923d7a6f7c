"""Train a tiny GPT-2 on a `clm` corpus, each packed document attending only to itself.

    python examples/torch_gpt2_clm.py OUT --steps 300
    torchrun --nproc_per_node 2 examples/torch_gpt2_clm.py OUT

The model's vocabulary and context come from the manifest; the packed rows'
`segment_ids` become a block-diagonal causal mask (`readers.attention_masks`) and
`positions` the position ids, so a row of several documents trains like the
documents apart. The first token of a document is not predicted from the
document before it.
"""

from __future__ import annotations

import sys

from transformers import GPT2Config, GPT2LMHeadModel

from readers.manifest import Corpus
from readers.attention_masks import document_causal_mask
from readers.torch import TokenmillDataset
from train_loop import start, train


def clm_loss(model, batch):
    starts_or_padding = (batch["positions"] == 0) | (batch["segment_ids"] == 0)
    return model(
        input_ids=batch["input_ids"],
        attention_mask=document_causal_mask(batch["segment_ids"]),
        position_ids=batch["positions"],
        labels=batch["input_ids"].masked_fill(starts_or_padding, -100),
    ).loss


def main(argv: list[str] | None = None):
    args = start(__doc__.splitlines()[0], argv)
    corpus = Corpus(args.corpus)
    eos = corpus.special_ids["eos"]
    config = GPT2Config(
        vocab_size=corpus.vocab_size, n_positions=corpus.schema["input_ids"].length, n_embd=64, n_layer=2, n_head=2, bos_token_id=eos, eos_token_id=eos
    )
    model = GPT2LMHeadModel(config)
    losses = train(model, TokenmillDataset(args.corpus, shuffle=True, seed=args.seed), clm_loss, args)
    return model, losses


if __name__ == "__main__":
    main(sys.argv[1:])
