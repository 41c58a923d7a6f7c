"""`tokenmill show`: every objective's examples decode to parts that give back the stored ids and the source text."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil

import numpy as np
import pytest

from corpus_tools import build, read_parquet, run_cli, shard_files
from inspect_corpus import build_all, stream
from pipelines.inspect.show import show
from pipelines.inspect.tokens import Tokens
from transforms.vocab import WORD_START


@pytest.fixture(scope="module")
def built(tmp_path_factory, sp):
    return build_all(tmp_path_factory, sp)


def decoded(version_dir: str, split: str = "train") -> list[dict]:
    out = io.StringIO()
    show(version_dir, split, count=10**6, as_json=True, out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def loaded(built, name: str) -> tuple[dict, Tokens, dict[str, np.ndarray], list[dict]]:
    """A build's manifest, its tokens, its stored train examples and what `show --json` makes of them."""
    manifest, version_dir = built[1][name]
    return manifest, Tokens.for_manifest(manifest, root=version_dir), read_parquet(version_dir), decoded(version_dir)


@functools.cache
def ids_by_piece(tokens: Tokens) -> dict[str, int]:
    """Each piece `show` writes (a name for every special id) to its id."""
    return {piece: i for i, piece in enumerate(tokens.piece_table.tolist())}


def piece_ids(tokens: Tokens, pieces: list[str]) -> list[int]:
    """The ids of `show`'s pieces: the inverse of `Tokens.pieces`."""
    return [ids_by_piece(tokens)[p] for p in pieces]


def encode_text(sp, text: str, tokens: Tokens) -> list[int]:
    """Text with special names in it (as `show` writes them) back to ids: names by the manifest, the rest by SentencePiece."""
    names = "|".join(re.escape(n) for n in sorted(tokens.names.values(), key=len, reverse=True))
    ids = []
    for part in re.split(f"({names})", text):
        if part in ids_by_piece(tokens) and tokens.is_named[ids_by_piece(tokens)[part]]:
            ids.append(ids_by_piece(tokens)[part])
        elif part.strip():
            ids.extend(sp.encode(part))
    return ids


def whole_words(part: dict) -> bool:
    """A part that starts at a word and ends at a sentence (or a document's eos): its text must encode back to its ids."""
    pieces = part["tokens"]
    return bool(pieces) and pieces[0].startswith(WORD_START) and (pieces[-1].endswith(".") or pieces[-1] == "</s>")


def check_text(sp, tokens: Tokens, parts: list[dict]) -> int:
    checked = 0
    for part in parts:
        if whole_words(part):
            assert encode_text(sp, part["text"], tokens) == piece_ids(tokens, part["tokens"]), part
            checked += 1
    return checked


def test_clm_parts_give_back_the_row_and_mark_document_boundaries(built, sp):
    manifest, tokens, stored, examples = loaded(built, "clm")
    assert len(examples) == stored["input_ids"].shape[0] == manifest["totals"]["train"]["examples"]
    parts, starts = [], 0
    for example, ids, segments in zip(examples, stored["input_ids"], stored["segment_ids"]):
        real = segments > 0
        assert sum((piece_ids(tokens, p["tokens"]) for p in example["parts"]), []) == ids[real].tolist()
        assert [p["segment"] for p in example["parts"]] == list(range(1, segments.max() + 1))
        for before, part in zip(example["parts"], example["parts"][1:]):
            assert before["ends_document"] and part["starts_document"]  # inside a row, pieces meet at document ends
        assert example["parts"][0]["starts_document"] is None
        starts += sum(p["starts_document"] is True for p in example["parts"])
        parts += example["parts"]
    assert starts > 0
    assert check_text(sp, tokens, parts) > len(parts) // 2


@pytest.mark.parametrize("name", ["mlm", "mlm_nsp", "mlm_sop"])
def test_bert_segments_are_the_row_with_masks_undone(built, sp, name):
    manifest, tokens, stored, examples = loaded(built, name)
    mask_id = manifest["tokenizer"]["special_ids"]["[MASK]"]
    segments, kinds = [], {"mask": 0, "random": 0, "kept": 0}
    for i, example in enumerate(examples):
        ids = stored["input_ids"][i]
        real = stored["input_mask"][i] > 0
        used = stored["masked_lm_weights"][i] > 0
        positions, truth = stored["masked_lm_positions"][i][used], stored["masked_lm_ids"][i][used]
        original = ids.copy()
        original[positions] = truth
        assert piece_ids(tokens, example["input"]["tokens"]) == ids[real].tolist()
        assert [p["position"] for p in example["predictions"]] == positions.tolist()
        assert piece_ids(tokens, [p["original"] for p in example["predictions"]]) == truth.tolist()
        expected_kinds = np.where(ids[positions] == mask_id, "mask", np.where(ids[positions] == truth, "kept", "random"))
        assert [p["kind"] for p in example["predictions"]] == expected_kinds.tolist()
        for p in example["predictions"]:
            kinds[p["kind"]] += 1
        a = example["segments"]["A"]
        # [CLS] A [SEP] (B [SEP]) is the whole unmasked row
        rebuilt = [tokens.specials["[CLS]"]] + piece_ids(tokens, a["tokens"]) + [tokens.specials["[SEP]"]]
        if name != "mlm":
            b = example["segments"]["B"]
            rebuilt += piece_ids(tokens, b["tokens"]) + [tokens.specials["[SEP]"]]
            label = int(stored["next_sentence_labels"][i][0])
            assert example["label"]["value"] == label
            assert ("NotNext" in example["label"]["meaning"]) == (name == "mlm_nsp" and label == 1)
            assert ("swapped" in example["label"]["meaning"]) == (name == "mlm_sop" and label == 1)
            segments.append(b)
        assert rebuilt == original[real].tolist()
        segments.append(a)
    assert min(kinds.values()) > 0, kinds
    assert check_text(sp, tokens, segments) > len(segments) // 3


@pytest.mark.parametrize("name", ["span_corruption", "prefix_lm", "decoder_only", "ul2"])
def test_denoising_sources_are_runs_of_the_corpus(built, sp, name):
    """Inputs with each sentinel's span put back (or prefix + target) are, piece after piece, the corpus's token stream."""
    manifest, tokens, stored, examples = loaded(built, name)
    corpus = stream(built[0], sp, tokens.eos if name == "decoder_only" else None)
    sources = [np.asarray(piece_ids(tokens, e["source"]["tokens"])) for e in examples]
    starts = []
    for example, source in zip(examples, sources):
        windows = np.lib.stride_tricks.sliding_window_view(corpus, source.size)
        found = np.flatnonzero((windows == source).all(axis=1))
        assert found.size, example
        starts.append(int(found[0]))
        if name != "decoder_only":  # its sources hold eos, which `show` names as </s>
            assert example["source"]["text"] == sp.decode(source.tolist())
    order = np.argsort(starts)
    lengths = np.array([s.size for s in sources])[order]
    assert np.array_equal(np.array(starts)[order], np.concatenate([[0], np.cumsum(lengths)[:-1]]))  # pieces tile the stream
    dropped = manifest["counters"]["objective"].get("short_piece_tokens_dropped", 0)
    assert lengths.sum() + dropped == corpus.size
    for i, (example, source) in enumerate(zip(examples, sources)):
        if "spans" in example:
            inputs = stored["inputs"][i]
            body = inputs[inputs != tokens.pad][:-1]
            lead = 1 if example.get("mode_token") else 0
            assert piece_ids(tokens, example["inputs"]["tokens"]) == body[lead:].tolist()
            assert [s["sentinel"] for s in example["spans"]] == [f"<extra_id_{k}>" for k in range(len(example["spans"]))]
        else:
            assert piece_ids(tokens, example["prefix"]["tokens"]) + piece_ids(tokens, example["target"]["tokens"]) == source.tolist()
            assert len(example["prefix"]["tokens"]) >= 1 and len(example["target"]["tokens"]) >= 1
        if name == "ul2":
            denoiser = manifest["objective"]["params"]["denoisers"][int(stored["denoiser"][i][0])]
            assert example["denoiser"]["name"] == denoiser["name"] and example["mode_token"] == denoiser["mode"]
        if name == "decoder_only":
            assert len(example["prefix"]["tokens"]) == int(stored["prefix_length"][i][0])


def test_index_and_shard_pick_the_same_example(built):
    _, builds = built
    manifest, version_dir = builds["mlm_nsp"]
    first_shard = next(s["examples"] for s in manifest["shards"] if s["split"] == "train" and s["shard"] == 0 and s["format"] == "parquet")
    code, by_index = run_cli("show", version_dir, "--index", first_shard + 2, "--json")
    assert code == 0
    code, by_shard = run_cli("show", version_dir, "--shard", 1, "--index", 2, "--json")
    assert code == 0 and json.loads(by_index) == json.loads(by_shard)
    assert json.loads(by_shard)["shard"] == 1 and json.loads(by_shard)["row"] == 2


def test_terminal_text_plain_when_piped_coloured_on_a_terminal(built):
    _, builds = built
    for name in ("clm", "mlm_nsp", "span_corruption", "ul2", "prefix_lm"):
        code, printed = run_cli("show", builds[name][1], "-n", 2, "--split", "train")
        assert code == 0 and "\x1b[" not in printed and "train example 1" in printed
        out = io.StringIO()
        show(builds[name][1], colour=True, out=out)
        assert "\x1b[" in out.getvalue()
    code, printed = run_cli("show", builds["mlm_nsp"][1], "--split", "validation")
    assert code == 0 and "validation example 0" in printed and "label" in printed


def test_a_different_tokenizer_is_refused_naming_both_hashes(built, tmp_path, capsys):
    _, builds = built
    manifest, version_dir = builds["clm"]
    other = tmp_path / "other.model"
    other.write_bytes(open(os.path.join(version_dir, manifest["tokenizer"]["path"]), "rb").read() + b"\0")
    code, _ = run_cli("show", version_dir, "--tokenizer", other)
    error = capsys.readouterr().err
    assert code == 1 and str(other) in error
    assert manifest["tokenizer"]["sha256"] in error and hashlib.sha256(other.read_bytes()).hexdigest() in error


@pytest.mark.parametrize("name", ["clm", "mlm_sop", "ul2", "decoder_only"])
def test_tfrecord_shards_show_the_same_examples(built, name):
    version_dir = built[1][name][1]
    for split in ("train", "validation"):
        if not built[1][name][0]["totals"].get(split, {}).get("examples"):
            continue
        out = {}
        for fmt in ("parquet", "tfrecord"):
            out[fmt] = io.StringIO()
            show(version_dir, split, count=10**6, fmt=fmt, as_json=True, out=out[fmt])
        assert out["parquet"].getvalue() == out["tfrecord"].getvalue() != ""
    picked = io.StringIO()
    show(version_dir, index=3, count=2, fmt="tfrecord", as_json=True, out=picked)
    assert [json.loads(line)["index"] for line in picked.getvalue().splitlines()] == [3, 4]


@pytest.mark.parametrize("fmt, detail", [("parquet", "sha256"), ("tfrecord", "CRC")])
def test_a_flipped_byte_names_the_damaged_shard(built, tmp_path, capsys, fmt, detail):
    _, version_dir = built[1]["span_corruption"]
    copy = tmp_path / "copy"
    shutil.copytree(version_dir, copy)
    victim = shard_files(str(copy), "train", fmt)[1]
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(victim, "wb").write(bytes(data))
    shard = next(s for s in json.load(open(copy / "manifest.json"))["shards"] if victim.endswith(s["path"]))
    code, printed = run_cli("show", copy, "--shard", shard["shard"], "--format", fmt)
    error = capsys.readouterr().err
    assert code == 1 and victim in error and detail in error and printed == ""


def test_unmasked_rows_from_gzipped_tfrecords(built, tmp_path_factory):
    corpus = tmp_path_factory.getbasetemp() / "inspect-builds" / "corpus.jsonl"
    _, version_dir = build(tmp_path_factory.mktemp("unmasked"), "--input", corpus, "--objective", "mlm", "--seq-len", 64, "--masking", "none", "--compression", "gzip", "--num-shards", 2)
    out = {}
    for fmt in ("parquet", "tfrecord"):
        out[fmt] = io.StringIO()
        show(version_dir, count=10**6, fmt=fmt, as_json=True, out=out[fmt])
    assert out["parquet"].getvalue() == out["tfrecord"].getvalue()
    stored = read_parquet(version_dir)
    tokens = Tokens.for_manifest(built[1]["mlm"][0], root=built[1]["mlm"][1])
    for line, ids, mask in zip(out["parquet"].getvalue().splitlines(), stored["input_ids"], stored["input_mask"]):
        example = json.loads(line)
        assert example["predictions"] == [] and piece_ids(tokens, example["input"]["tokens"]) == ids[mask > 0].tolist()
    code, printed = run_cli("show", version_dir, "--format", "tfrecord")
    assert code == 0 and "unmasked" in printed
