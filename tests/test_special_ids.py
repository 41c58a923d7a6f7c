"""Special ids never depend on the objective (SPEC §1), and the manifest says which output format wrote them."""

from __future__ import annotations

import io
import json

import pytest

from corpus_tools import build
from transforms.vocab import APPENDED_ORDER, Vocab, sentinel_piece


def train_model(texts: list[str], vocab_size: int, control_symbols: tuple[str, ...] = ()) -> bytes:
    """A unigram model with pad 0, eos 1, unk 2 and, of the special tokens, only `control_symbols`."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(line for t in texts for line in t.split("\n") if line.strip()),
        model_writer=model,
        vocab_size=vocab_size,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        control_symbols=list(control_symbols),
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory, sample_docs) -> tuple[str, str]:
    """A SentencePiece model that defines no special token but pad/eos/unk, and a small JSONL corpus."""
    root = tmp_path_factory.mktemp("bare")
    (root / "bare.model").write_bytes(train_model([d["text"] for d in sample_docs[:600]], 1000))
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in sample_docs[:300]:
            f.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
    return str(root / "bare.model"), str(root / "corpus.jsonl")


def test_first_100_sentinels_then_the_other_specials_then_more_sentinels(bare_model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=bare_model[0])
    size = sp.get_piece_size()
    for extra_ids in (100, 127):
        vocab = Vocab.from_processor(sp, extra_ids)
        assert vocab.sentinels[:100] == tuple(range(size + 99, size - 1, -1)), "<extra_id_0> highest, T5-style"
        assert [vocab.specials[p] for p in APPENDED_ORDER] == list(range(size + 100, size + 106))
        assert vocab.sentinels[100:] == tuple(range(size + 106, size + 106 + extra_ids - 100)), "beyond 100: ascending after"
        assert vocab.size == size + 6 + extra_ids
    few = Vocab.from_processor(sp, 20)
    assert few.sentinels == tuple(range(size + 19, size - 1, -1)) and few.specials[APPENDED_ORDER[0]] == size + 20


def test_clm_and_ul2_builds_agree_on_every_id_they_share(tmp_path, bare_model):
    model, corpus = bare_model
    common = ("--tokenizer", model, "--input", corpus, "--num-shards", 1)
    clm, _ = build(tmp_path / "clm", "--objective", "clm", "--seq-len", 256, *common)
    ul2, _ = build(tmp_path / "ul2", "--objective", "ul2", *common)
    ids = {m["objective"]["name"]: m["tokenizer"]["special_ids"] for m in (clm, ul2)}
    assert len(ids["clm"]["extra_ids"]) == 100 and len(ids["ul2"]["extra_ids"]) == 127
    shared = set(ids["clm"]) & set(ids["ul2"])
    assert shared >= {"pad", "eos", *APPENDED_ORDER}
    for name in shared - {"extra_ids"}:
        assert ids["clm"][name] == ids["ul2"][name], name
    assert ids["ul2"]["extra_ids"][:100] == ids["clm"]["extra_ids"]
    assert clm["tokenizer"]["model_size"] == ul2["tokenizer"]["model_size"] == 1000
    assert ids["ul2"]["extra_ids"][0] == 1099 and ids["ul2"]["[CLS]"] == 1100
    assert clm["format_version"] == ul2["format_version"] == 2


def test_a_model_that_defines_some_sentinels_keeps_them(sample_docs):
    """Only what the model lacks is appended: defined pieces keep the model's ids."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=train_model([d["text"] for d in sample_docs[:200]], 500, (sentinel_piece(0), "[MASK]")))
    vocab = Vocab.from_processor(sp, 101)
    size = sp.get_piece_size()
    assert vocab.sentinels[0] == sp.piece_to_id(sentinel_piece(0)) < size and vocab.mask == sp.piece_to_id("[MASK]")
    assert vocab.sentinels[1:100] == tuple(range(size + 98, size - 1, -1))
    assert [vocab.specials[p] for p in APPENDED_ORDER if p != "[MASK]"] == list(range(size + 99, size + 104))
    assert vocab.sentinels[100] == size + 104 and vocab.size == size + 105
