"""Shared fixtures: the real sample corpus and a SentencePiece model trained on it.

Everything is built on the fly (no downloads) in a per-session cache.
"""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the sample corpus and models of a test session out of the user's cache."""
    os.environ["TOKENMILL_CACHE"] = str(tmp_path_factory.mktemp("tokenmill-cache"))


@pytest.fixture(scope="session")
def sample_corpus_path(_private_cache) -> str:
    from pipelines.sample import sample_corpus_path

    return sample_corpus_path()


@pytest.fixture(scope="session")
def sample_docs(sample_corpus_path) -> list[dict]:
    with open(sample_corpus_path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def tokenizer_path(_private_cache) -> str:
    """The sample tokenizer (8000 pieces), the one `tokenmill build` uses by default."""
    from pipelines.sample import sample_tokenizer_path

    return sample_tokenizer_path()


@pytest.fixture(scope="session")
def sp(tokenizer_path):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=tokenizer_path)


@pytest.fixture(scope="session")
def vocab(sp):
    from transforms.vocab import Vocab

    return Vocab.from_processor(sp)


@pytest.fixture(scope="session")
def sample_token_ids(sample_docs, sp) -> list[list[int]]:
    """Each sample document encoded whole, as `clm` tokenizes it."""
    return sp.encode([d["text"] for d in sample_docs])
