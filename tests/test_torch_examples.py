"""The example trainers learn from tokenmill shards: tiny Hugging Face models' losses fall within a few dozen steps."""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest
import torch

from corpus_tools import build, sample_subset
from readers.manifest import Corpus
from readers.torch import TokenmillDataset

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
STEPS = 40
CORPORA = {
    "clm": ["--seq-len", 64],
    "mlm_nsp": ["--objective", "mlm_nsp", "--seq-len", 64],
    "mlm_dynamic": ["--objective", "mlm", "--seq-len", 64, "--masking", "none"],
    "span_corruption": ["--objective", "span_corruption", "--inputs-length", 64],
    "ul2": ["--objective", "ul2", "--inputs-length", 64, "--targets-length", 64],
}
ID_FEATURES = ("input_ids", "inputs", "targets", "masked_lm_ids")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, sample_docs):
    directory = tmp_path_factory.mktemp("corpora")
    docs = sample_subset(directory, sample_docs)
    return {name: build(directory / name, "--input", docs, "--num-shards", 2, *args)[1] for name, args in CORPORA.items()}


@pytest.fixture
def example(monkeypatch):
    """Import an example script as its own directory on the path would; one thread (two cores shared by many processes)."""
    monkeypatch.syspath_prepend(EXAMPLES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield lambda name: importlib.import_module(name)
    torch.set_num_threads(threads)
    for name in ("torch_gpt2_clm", "torch_t5", "torch_bert", "train_loop"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "script, corpus", [("torch_gpt2_clm", "clm"), ("torch_bert", "mlm_nsp"), ("torch_bert", "mlm_dynamic"), ("torch_t5", "span_corruption"), ("torch_t5", "ul2")]
)
def test_the_example_trains_and_its_loss_falls(script, corpus, corpora, example, capsys):
    model, losses = example(script).main([corpora[corpus], "--steps", str(STEPS), "--lr", "5e-3", "--num-workers", "0", "--log-every", "10"])
    printed = capsys.readouterr().out
    assert len(losses) == STEPS and printed.count("loss") == 1 + STEPS // 10
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 1.0, f"{script} on {corpus}: loss {first:.2f} -> {last:.2f}"
    assert model.get_input_embeddings().num_embeddings == Corpus(corpora[corpus]).vocab_size


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_every_id_is_below_the_manifests_vocab_size(corpus, corpora):
    dataset = TokenmillDataset(corpora[corpus])
    vocab_size = Corpus(corpora[corpus]).vocab_size
    rows = list(dataset)
    for name in ID_FEATURES:
        if name in rows[0]:
            values = np.stack([row[name] for row in rows])
            assert values.dtype == np.int64 and 0 <= values.min() and values.max() < vocab_size, name


def test_batches_go_into_t5_as_they_come(corpora):
    from transformers import T5Config, T5ForConditionalGeneration

    corpus = Corpus(corpora["span_corruption"])
    batch = next(iter(torch.utils.data.DataLoader(TokenmillDataset(corpora["span_corruption"]), batch_size=4)))
    assert batch["inputs"].dtype == batch["targets"].dtype == torch.long
    model = T5ForConditionalGeneration(T5Config(vocab_size=corpus.vocab_size, d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2, decoder_start_token_id=0))
    loss = model(input_ids=batch["inputs"], labels=batch["targets"]).loss
    assert torch.isfinite(loss)
