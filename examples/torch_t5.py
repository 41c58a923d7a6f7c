"""Train a tiny T5 on a `span_corruption`, `ul2` or encoder-decoder `prefix_lm` corpus.

    python examples/torch_t5.py OUT --steps 300

`inputs` go in as `input_ids` and `targets` as `labels`, as the reader gives
them (`torch.long`); padding is left out of the loss, and T5 makes the
decoder inputs from the labels. Vocabulary, pad and eos come from the
manifest.
"""

from __future__ import annotations

import sys

from transformers import T5Config, T5ForConditionalGeneration

from readers.manifest import Corpus
from readers.torch import TokenmillDataset
from train_loop import start, train


def main(argv: list[str] | None = None):
    args = start(__doc__.splitlines()[0], argv)
    corpus = Corpus(args.corpus)
    pad, eos = corpus.special_ids["pad"], corpus.special_ids["eos"]
    config = T5Config(
        vocab_size=corpus.vocab_size,
        d_model=64,
        d_ff=128,
        d_kv=32,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
    )
    model = T5ForConditionalGeneration(config)

    def t5_loss(model, batch):
        inputs, targets = batch["inputs"], batch["targets"]
        return model(input_ids=inputs, attention_mask=inputs != pad, labels=targets.masked_fill(targets == pad, -100)).loss

    losses = train(model, TokenmillDataset(args.corpus, shuffle=True, seed=args.seed), t5_loss, args)
    return model, losses


if __name__ == "__main__":
    main(sys.argv[1:])
