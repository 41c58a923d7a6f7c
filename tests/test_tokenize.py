"""Tokenizing in bulk gives exactly the ids SentencePiece gives each text alone."""

from __future__ import annotations

import numpy as np

from transforms.read import Document
from transforms.sentences import split_sentences
from transforms.tokenize import tokenize_documents
from transforms.tokenizer.sentencepiece_model import SentencePieceTokenizer


def test_sentences_and_whole_documents_encode_to_the_ids_of_each_text_alone(sp, sample_docs):
    documents = [d["text"] for d in sample_docs[:300]]
    sentences = [s for text in documents for s in split_sentences(text)]
    encode_flat = SentencePieceTokenizer(sp).encode_flat
    for texts in (documents, sentences, ["", "   ", "one", ""] + sentences[:50]):
        tokens, lengths = encode_flat(texts)
        expected = sp.encode(texts)
        assert tokens.dtype == np.int32 and lengths.tolist() == [len(ids) for ids in expected]
        assert tokens.tolist() == [i for ids in expected for i in ids]
    assert encode_flat([])[0].size == 0


def test_documents_keep_their_sentences_and_documents_without_tokens_are_reported(sp, sample_docs):
    texts = [d["text"] for d in sample_docs[:40]]
    docs = [Document(str(i), text, None, "f", i) for i, text in enumerate(texts)] + [Document("blank", " \n ", None, "f", 99)]
    batch, empty = tokenize_documents(SentencePieceTokenizer(sp).encode_flat, docs, split_sentences)
    assert empty == [len(texts)]
    assert batch.num_docs == len(texts)
    for d, text in enumerate(texts):
        expected = [ids for ids in sp.encode(split_sentences(text)) if ids]
        assert [s.tolist() for s in batch.doc_sentences(d)] == expected
