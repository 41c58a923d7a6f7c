"""A small corpus of plain words for the `show` and `report` tests, and its builds.

The words are single pieces of the sample tokenizer and every sentence ends
with a full stop, so a decoded segment that starts at a word and ends at a
sentence encodes back to exactly its ids (no unknown characters, no
normalisation to undo).
"""

from __future__ import annotations

import json
import os

import numpy as np

from corpus_tools import build
from transforms.keys import hash64
from transforms.vocab import WORD_START

NUM_DOCS = 120

OBJECTIVES = {
    "clm": ("--objective", "clm", "--seq-len", 64),
    "mlm": ("--objective", "mlm", "--seq-len", 64),
    "mlm_nsp": ("--objective", "mlm_nsp", "--seq-len", 64),
    "mlm_sop": ("--objective", "mlm_sop", "--seq-len", 64, "--whole-word-mask"),
    "span_corruption": ("--objective", "span_corruption", "--inputs-length", 64),
    "prefix_lm": ("--objective", "prefix_lm", "--inputs-length", 64),
    "decoder_only": ("--objective", "prefix_lm", "--inputs-length", 64, "--prefix-layout", "decoder_only"),
    "ul2": ("--objective", "ul2", "--inputs-length", 128, "--targets-length", 128),
}
# The denoising objectives see one stream: every document in one bucket, in key order, all in train.
ONE_STREAM = ("--num-buckets", 1, "--validation-fraction", 0)
SPLIT = ("--validation-fraction", 0.1)


def words(sp, count: int = 400) -> list[str]:
    """Alphabetic whole-word pieces of the tokenizer that encode back to themselves and capitalize without an unknown piece."""
    out = []
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        word = piece[1:]
        if piece.startswith(WORD_START) and word.isalpha() and word.islower() and len(word) >= 3 and sp.encode(word) == [i] and sp.unk_id() not in sp.encode(word.capitalize()):
            out.append(word)
        if len(out) == count:
            break
    return out


def write_corpus(path: str, sp) -> list[dict]:
    rng = np.random.default_rng(7)
    vocabulary = words(sp)
    docs = []
    for d in range(NUM_DOCS):
        sentences = [" ".join(rng.choice(vocabulary, size=rng.integers(4, 12))).capitalize() + "." for _ in range(rng.integers(1, 9))]
        docs.append({"id": f"doc{d:03d}", "text": " ".join(sentences)})
    with open(path, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps(doc) + "\n")
    return docs


def build_all(tmp_path_factory, sp) -> tuple[list[dict], dict[str, tuple[dict, str]]]:
    """The corpus and (manifest, version directory) per build name; built once a test session, whichever module asks first."""
    root = tmp_path_factory.getbasetemp() / "inspect-builds"
    corpus = os.path.join(root, "corpus.jsonl")
    fresh = not root.exists()
    root.mkdir(exist_ok=True)
    docs = write_corpus(corpus, sp) if fresh else [json.loads(line) for line in open(corpus, encoding="utf-8")]
    builds = {}
    for name, args in OBJECTIVES.items():
        output = os.path.join(root, name)
        if fresh:
            layout = ONE_STREAM if args[1] in ("span_corruption", "prefix_lm", "ul2") else SPLIT
            build(output, "--input", corpus, "--num-shards", 2, *args, *layout)
        version_dir = os.path.join(output, "versions", open(os.path.join(output, "LATEST")).read().strip())
        builds[name] = (json.load(open(os.path.join(version_dir, "manifest.json"))), version_dir)
    return docs, builds


def stream(docs: list[dict], sp, eos: int | None = None) -> np.ndarray:
    """The token stream a one-bucket denoising build cuts into pieces: documents in key order, no separator (or `eos` after each)."""
    ordered = sorted(docs, key=lambda d: hash64(f"id:{d['id']}".encode("utf-8")))  # a document's key is "id:" + its id
    after = [] if eos is None else [eos]
    return np.concatenate([np.asarray(sp.encode(d["text"]) + after, dtype=np.int64) for d in ordered])
