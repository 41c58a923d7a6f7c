"""Train a tiny BERT on an `mlm_nsp`/`mlm_sop` corpus (BertForPreTraining) or an `mlm` one (BertForMaskedLM).

    python examples/torch_bert.py OUT --steps 300

Works the same on corpora built with `--masking none`: the reader then
draws the masks as it loads (fresh each epoch). The sparse
`masked_lm_positions`/`masked_lm_ids` become Hugging Face's dense `labels`;
`input_mask` is the attention mask and `segment_ids` the token types.
"""

from __future__ import annotations

import sys

from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

from readers.manifest import Corpus
from readers.torch import TokenmillDataset, bert_mlm_labels
from train_loop import start, train


def bert_loss(model, batch):
    labels = bert_mlm_labels(batch["masked_lm_positions"], batch["masked_lm_ids"], batch["masked_lm_weights"], batch["input_ids"].shape[1])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["input_mask"], "token_type_ids": batch["segment_ids"], "labels": labels}
    if "next_sentence_labels" in batch:
        inputs["next_sentence_label"] = batch["next_sentence_labels"]
    return model(**inputs).loss


def main(argv: list[str] | None = None):
    args = start(__doc__.splitlines()[0], argv)
    corpus = Corpus(args.corpus)
    config = BertConfig(
        vocab_size=corpus.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=corpus.schema["input_ids"].length,
        pad_token_id=corpus.special_ids["pad"],
    )
    model = (BertForPreTraining if "next_sentence_labels" in corpus.schema.names else BertForMaskedLM)(config)
    losses = train(model, TokenmillDataset(args.corpus, shuffle=True, seed=args.seed), bert_loss, args)
    return model, losses


if __name__ == "__main__":
    main(sys.argv[1:])
