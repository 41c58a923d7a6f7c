"""Bring your own tokenizer: Hugging Face `tokenizers` files (byte-level BPE, WordPiece) and a stock SentencePiece model build every objective."""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import sys
from contextlib import redirect_stderr

import numpy as np
import pytest

from corpus_tools import build, read_parquet, read_with_torch_reader, run_cli, sample_subset
from tokenizer_tools import BPE_SPECIALS, train_byte_level_bpe, train_wordpiece

OBJECTIVES = {
    "clm": ["--seq-len", 64],
    "mlm": ["--objective", "mlm", "--seq-len", 64, "--whole-word-mask"],
    "mlm_nsp": ["--objective", "mlm_nsp", "--seq-len", 64],
    "mlm_sop": ["--objective", "mlm_sop", "--seq-len", 64, "--whole-word-mask"],
    "span_corruption": ["--objective", "span_corruption", "--inputs-length", 64],
    "prefix_lm": ["--objective", "prefix_lm", "--inputs-length", 64],
    "ul2": ["--objective", "ul2", "--inputs-length", 64, "--targets-length", 64],
}
DOCS = 120


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_docs):
    return sample_subset(tmp_path_factory.mktemp("docs"), sample_docs, DOCS), [d["text"] for d in sample_docs[:DOCS]]


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory, sample_docs):
    texts = [d["text"] for d in sample_docs[:400]]
    root = tmp_path_factory.mktemp("tokenizers")
    return {"bpe": train_byte_level_bpe(root / "bpe", texts), "wordpiece": train_wordpiece(root / "wordpiece", texts)}


@pytest.fixture(scope="module")
def stock_sentencepiece(tmp_path_factory, sample_docs):
    """A SentencePiece model trained with SentencePiece's defaults: unk 0, bos 1, eos 2, no pad, no [CLS]/[MASK]."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([d["text"] for d in sample_docs[:400]]), model_writer=model, vocab_size=600, minloglevel=2, num_threads=1)
    path = tmp_path_factory.mktemp("spm") / "stock.model"
    path.write_bytes(model.getvalue())
    return str(path)


@pytest.fixture(scope="module")
def builds(tmp_path_factory, corpus, tokenizer_dirs, stock_sentencepiece):
    """(tokenizer, objective) -> (manifest, version dir), every objective with each tokenizer."""
    root = tmp_path_factory.mktemp("builds")
    paths = {**tokenizer_dirs, "stock_spm": stock_sentencepiece}
    return {
        (name, objective): build(root / name / objective, "--input", corpus[0], "--tokenizer", path, "--num-shards", 1, *args)
        for name, path in paths.items()
        for objective, args in OBJECTIVES.items()
    }


def _rust(tokenizer_dirs, name):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(os.path.join(tokenizer_dirs[name], "tokenizer.json"))


def _document_ids(encode, texts, sentences: bool) -> list[np.ndarray]:
    from transforms.sentences import split_sentences

    return [np.concatenate([np.asarray(encode(s), np.int64) for s in (split_sentences(t) if sentences else [t])]) for t in texts]


def _runs(objective: str, features: dict, special: dict) -> list[np.ndarray]:
    """The token runs of the documents the examples hold: masks restored, sentinels refilled, special tokens taken out."""
    pad, eos, sentinels = special["pad"], special["eos"], special["extra_ids"]
    runs = []
    for i in range(min(12, len(next(iter(features.values()))))):
        if objective == "clm":
            row = features["input_ids"][i][features["segment_ids"][i] > 0]
            runs += [r for r in np.split(row, np.flatnonzero(row == eos) + 1) if r.size and r[-1] == eos]
        elif objective.startswith("mlm"):
            row = features["input_ids"][i].copy()
            weights = features["masked_lm_weights"][i] > 0
            row[features["masked_lm_positions"][i][weights]] = features["masked_lm_ids"][i][weights]
            row = row[features["input_mask"][i] > 0]
            runs += [r[1:] for r in np.split(row, np.flatnonzero((row == special["[CLS]"]) | (row == special["[SEP]"]))) if r.size > 1]
        else:
            inputs, targets = (features[name][i][features[name][i] != pad] for name in ("inputs", "targets"))
            inputs = inputs[1:] if inputs[0] in (special["[NLU]"], special["[NLG]"], special["[S2S]"]) else inputs
            spans = np.split(targets[:-1], np.flatnonzero(np.isin(targets[:-1], sentinels)))
            filled = {int(s[0]): s[1:] for s in spans if s.size and s[0] in sentinels}
            runs.append(np.concatenate([filled.get(int(t), [t]) for t in inputs[:-1]] + ([] if filled else [targets[:-1]])).astype(np.int64))
    return runs


def _covered_by_documents(run: np.ndarray, documents: list[np.ndarray]) -> bool:
    """True when `run` is consecutive pieces of documents: a piece of one, or a tail of one followed by whole ones and a head."""
    marker = np.array([-1], np.int64)
    joined = np.concatenate([x for d in documents for x in (marker, d)] + [marker])
    is_start = np.zeros(joined.size + 1, bool)
    is_start[np.flatnonzero(joined == -1) + 1] = True
    is_end = np.zeros(joined.size + 1, bool)
    is_end[np.flatnonzero(joined == -1)] = True
    data = joined.tobytes()

    def found(piece, need_start, need_end):
        target, at = piece.tobytes(), data.find(piece.tobytes())
        while at >= 0:
            if at % 8 == 0 and (not need_start or is_start[at // 8]) and (not need_end or is_end[at // 8 + piece.size]):
                return True
            at = data.find(target, at + 1)
        return False

    def split(pos: int) -> bool:
        for length in range(run.size - pos, 0, -1):
            last = pos + length == run.size
            if found(run[pos : pos + length], pos > 0, not last) and (last or split(pos + length)):
                return True
        return False

    return split(0)


@pytest.mark.parametrize("name", ["bpe", "wordpiece", "stock_spm"])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_holds_the_documents_tokens(name, objective, builds, corpus, tokenizer_dirs, stock_sentencepiece):
    manifest, version_dir = builds[(name, objective)]
    if name == "stock_spm":
        import sentencepiece as spm

        encode = spm.SentencePieceProcessor(model_file=stock_sentencepiece).encode
    else:
        rust = _rust(tokenizer_dirs, name)
        encode = lambda text: rust.encode(text, add_special_tokens=False).ids
    documents = _document_ids(encode, corpus[1], sentences=objective.startswith("mlm"))
    special = manifest["tokenizer"]["special_ids"]
    runs = _runs(objective, read_parquet(version_dir), special)
    assert runs
    for run in runs:
        body = (run[:-1] if objective == "clm" else run).astype(np.int64)
        if not body.size:
            continue
        assert _covered_by_documents(body, documents), (objective, run[:20])


@pytest.mark.parametrize("name", ["bpe", "wordpiece"])
def test_clm_documents_round_trip_through_the_tokenizers_decoder(name, builds, corpus, tokenizer_dirs):
    manifest, version_dir = builds[(name, "clm")]
    rust = _rust(tokenizer_dirs, name)
    features = read_parquet(version_dir)
    eos = manifest["tokenizer"]["special_ids"]["eos"]
    texts = set(corpus[1]) if name == "bpe" else {rust.decode(rust.encode(t, add_special_tokens=False).ids) for t in corpus[1]}
    whole = 0
    for ids, segments, positions in zip(features["input_ids"], features["segment_ids"], features["positions"]):
        for segment in np.unique(segments[segments > 0]):
            piece = ids[segments == segment]
            if positions[segments == segment][0] == 0 and piece[-1] == eos:
                decoded = rust.decode(piece[:-1].tolist(), skip_special_tokens=False)
                whole += decoded in texts
    assert whole >= 10


def test_special_ids_follow_the_spec_and_agree_across_objectives(builds, tokenizer_dirs):
    rust = _rust(tokenizer_dirs, "bpe")
    size = rust.get_vocab_size()
    ids = {objective: builds[("bpe", objective)][0]["tokenizer"]["special_ids"] for objective in OBJECTIVES}
    clm = ids["clm"]
    assert clm["eos"] == rust.token_to_id(BPE_SPECIALS["eos_token"]) and clm["bos"] == rust.token_to_id(BPE_SPECIALS["bos_token"])
    assert clm["extra_ids"][0] == size + 99 and clm["extra_ids"][99] == size
    assert clm["pad"] == size + 100 and clm["[CLS]"] == size + 101 and clm["unk"] is None
    assert ids["ul2"]["extra_ids"][100:] == list(range(size + 100 + 8, size + 8 + len(ids["ul2"]["extra_ids"])))
    for objective, found in ids.items():
        shared = {k: v for k, v in found.items() if k != "extra_ids"}
        assert shared == {k: v for k, v in clm.items() if k != "extra_ids"} and found["extra_ids"][:100] == clm["extra_ids"][:100], objective
    wordpiece = builds[("wordpiece", "mlm")][0]["tokenizer"]["special_ids"]
    wp = _rust(tokenizer_dirs, "wordpiece")
    assert [wordpiece[k] for k in ("pad", "[CLS]", "[SEP]", "[MASK]", "unk")] == [wp.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")]


@pytest.mark.parametrize("name", ["bpe", "wordpiece", "stock_spm"])
def test_the_version_holds_the_tokenizer_and_show_decodes_with_it(name, builds, tmp_path, monkeypatch):
    manifest, version_dir = builds[(name, "span_corruption")]
    entry = manifest["tokenizer"]
    for f in entry["files"]:
        with open(os.path.join(version_dir, f["path"]), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == f["sha256"]
    assert entry["path"].startswith("tokenizer/") and entry["kind"] == ("sentencepiece" if name == "stock_spm" else "tokenizers")
    monkeypatch.chdir(tmp_path)
    code, printed = run_cli("show", version_dir, "-n", "1")
    assert code == 0 and "<extra_id_0>" in printed, printed
    assert run_cli("verify", version_dir)[0] == 0


def test_a_stock_sentencepiece_model_gets_a_pad_and_every_reader_pads_with_it(builds):
    manifest, version_dir = builds[("stock_spm", "clm")]
    special, size = manifest["tokenizer"]["special_ids"], manifest["tokenizer"]["model_size"]
    assert special["pad"] == size + 100 and special["eos"] == 2 and special["unk"] == 0
    mlm_manifest, mlm_dir = builds[("stock_spm", "mlm")]
    pad = mlm_manifest["tokenizer"]["special_ids"]["pad"]
    rows = read_with_torch_reader(mlm_dir)
    unused = rows["masked_lm_weights"] == 0
    assert unused.any() and (rows["masked_lm_ids"][unused] == pad).all() and (rows["masked_lm_positions"][unused] == pad).all()
    assert (rows["input_ids"][rows["input_mask"] == 0] == pad).all()


def test_whole_word_masks_cover_whole_pre_tokenizer_words(tokenizer_dirs, corpus):
    from transforms.objectives.bert import MaskedLM
    from transforms.read import Document
    from transforms.tokenize import tokenize_documents
    from transforms.tokenizer import read_tokenizer_files
    from transforms.vocab import Vocab

    for name in ("bpe", "wordpiece"):
        files = read_tokenizer_files(tokenizer_dirs[name], lambda p: open(p, "rb").read(), os.path.exists, os.path.isdir)
        tokenizer = files.load()
        vocab = Vocab.from_tokenizer(tokenizer, named=files.named_roles())
        docs = [Document(key=str(i), text=t, source="t", offset=i) for i, t in enumerate(corpus[1][:60])]
        batch, _ = tokenize_documents(tokenizer.encode_words, docs, None)
        objective = MaskedLM(vocab, seq_len=256, whole_word_mask=True, short_seq_prob=0.0)
        features = objective.build(batch, np.random.default_rng(0)).features
        by_ids = {}
        for d in range(batch.num_docs):
            ids = batch.doc_tokens(d)
            starts = batch.word_starts[batch.doc_token_offsets()[d] : batch.doc_token_offsets()[d + 1]]
            by_ids[ids.tobytes()] = starts
        checked = 0
        for i in range(features["input_ids"].shape[0]):
            row = features["input_ids"][i].copy()
            weights = features["masked_lm_weights"][i] > 0
            positions = features["masked_lm_positions"][i][weights]
            row[positions] = features["masked_lm_ids"][i][weights]
            masked = np.zeros(row.size, bool)
            masked[positions] = True
            seps = np.flatnonzero((row == vocab.cls) | (row == vocab.sep))
            for lo, hi in zip(seps[:-1] + 1, seps[1:]):
                starts = by_ids.get(row[lo:hi].tobytes())
                if starts is None:
                    continue
                word = np.cumsum(starts)
                for w in np.unique(word[masked[lo:hi]]):
                    assert masked[lo:hi][word == w].all(), f"{name}: a word is partly masked"
                    checked += 1
        assert checked > 50, name
        assert (~batch.word_starts).sum() > 0.1 * batch.word_starts.size, "words of several tokens were there to mask"


@pytest.mark.parametrize(
    "setup, message",
    [
        ("neither", "is neither a SentencePiece model nor a Hugging Face tokenizer.json"),
        ("missing_token", "names '<|eot|>' as the eos token, but the tokenizer has no such token"),
        ("no_bos", "--add-bos: the tokenizer defines no bos token"),
        ("flag_missing_token", "--pad-token names '<pad>' as the pad token"),
    ],
)
def test_a_bad_tokenizer_is_one_line_at_planning_and_nothing_is_published(setup, message, tmp_path, corpus, tokenizer_dirs):
    import shutil

    args = []
    if setup == "neither":
        path = tmp_path / "junk.model"
        path.write_bytes(b"\x00garbage" * 20)
    elif setup == "missing_token":
        path = tmp_path / "bad"
        shutil.copytree(tokenizer_dirs["bpe"], path)
        (path / "tokenizer_config.json").write_text('{"eos_token": "<|eot|>"}')
    elif setup == "no_bos":
        path, args = tokenizer_dirs["wordpiece"], ["--add-bos"]
    else:
        path, args = tokenizer_dirs["bpe"], ["--pad-token", "<pad>"]
    err = io.StringIO()
    with redirect_stderr(err):
        code, printed = run_cli("build", "--input", corpus[0], "--tokenizer", path, "--output", tmp_path / "out", "--no-progress", *args)
    lines = [line for line in (err.getvalue() + printed).splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and message in lines[0] and "Traceback" not in err.getvalue(), lines
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_add_bos_starts_every_document_with_the_tokenizers_bos(tmp_path, corpus, tokenizer_dirs):
    manifest, version_dir = build(tmp_path / "out", "--input", corpus[0], "--tokenizer", tokenizer_dirs["bpe"], "--add-bos", "--seq-len", 64, "--packing", "best_fit", "--validation-fraction", 0)
    features = read_parquet(version_dir)
    bos = manifest["tokenizer"]["special_ids"]["bos"]
    starts = (features["positions"] == 0) & (features["segment_ids"] > 0)
    assert manifest["objective"]["params"]["add_bos"] is True
    assert (features["input_ids"] == bos).sum() == (features["input_ids"][starts] == bos).sum() == manifest["counters"]["documents_used"]


def test_a_tiny_gpt2_learns_from_a_byte_level_bpe_clm_build(builds, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        example = importlib.import_module("torch_gpt2_clm")
        _, losses = example.main([builds[("bpe", "clm")][1], "--steps", "60", "--lr", "5e-3", "--num-workers", "0", "--log-every", "60"])
    finally:
        torch.set_num_threads(threads)
        for name in ("torch_gpt2_clm", "train_loop"):
            sys.modules.pop(name, None)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


def test_verify_checks_the_tokenizer_copy(builds, tmp_path):
    import shutil

    manifest, version_dir = builds[("wordpiece", "clm")]
    copy = tmp_path / "version"
    shutil.copytree(version_dir, copy)
    (copy / manifest["tokenizer"]["path"]).write_bytes(b"{}")
    code, printed = run_cli("verify", copy)
    assert code == 1 and "tokenizer/tokenizer.json: 2 bytes" in printed, printed
