"""`tokenmill report`: its numbers against the build's own counters and against counts made here from the shards."""

from __future__ import annotations

import base64
import html.parser
import io
import shutil
import sys
import time

import numpy as np
import pytest

from corpus_tools import build, read_parquet, run_cli, shard_files
from inspect_corpus import OBJECTIVES, build_all
from pipelines.inspect.measure import summarize, tally
from pipelines.inspect.report import measure_version, report
from readers.manifest import Corpus

SPLITS = ("train", "validation")


@pytest.fixture(scope="module")
def built(tmp_path_factory, sp):
    return build_all(tmp_path_factory, sp)


def splits_of(manifest: dict) -> list[str]:
    return [s for s in SPLITS if manifest["totals"].get(s, {}).get("examples")]


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_padding_examples_and_tokens_match_the_shards(built, name):
    _, builds = built
    manifest, version_dir = builds[name]
    measured = measure_version(Corpus(version_dir))
    token_features = [f["name"] for f in manifest["features"] if f["counts_tokens"]]
    for split in splits_of(manifest):
        stored = read_parquet(version_dir, split)
        real = sum(int((stored[f] != 0).sum()) for f in token_features)
        positions = sum(stored[f].size for f in token_features)
        numbers = measured["splits"][split]
        assert numbers["examples"] == manifest["totals"][split]["examples"] == stored[token_features[0]].shape[0]
        assert numbers["tokens"] == manifest["totals"][split]["tokens"] == real
        assert numbers["padding_fraction"] == pytest.approx(1 - real / positions, abs=1e-12)
        assert round(numbers["padding_fraction"], 6) == manifest["totals"][split]["padding_fraction"]


@pytest.mark.parametrize("name", ["mlm", "mlm_nsp", "mlm_sop"])
def test_bert_mask_shares_and_labels(built, name):
    _, builds = built
    manifest, version_dir = builds[name]
    measured = measure_version(Corpus(version_dir))
    counters = manifest["counters"]["objective"]
    mask_id = manifest["tokenizer"]["special_ids"]["[MASK]"]
    predictions = tokens = labels = 0
    for split in splits_of(manifest):
        stored = read_parquet(version_dir, split)
        kinds = {"mask": 0, "random": 0, "kept": 0}
        for ids, positions, truth, weights in zip(stored["input_ids"], stored["masked_lm_positions"], stored["masked_lm_ids"], stored["masked_lm_weights"]):
            for p, t, w in zip(positions, truth, weights):
                if w:
                    kinds["mask" if ids[p] == mask_id else "kept" if ids[p] == t else "random"] += 1
        numbers = measured["splits"][split]
        total = sum(kinds.values())
        for kind, count in kinds.items():
            assert numbers[f"{kind}_share"] == pytest.approx(count / total)
        assert numbers["predictions_per_example"].sum() == total
        predictions += total
        tokens += int(stored["input_mask"].sum())
        assert numbers["masked_fraction"] == pytest.approx(total / stored["input_mask"].sum())
        if name != "mlm":
            labels += int(stored["next_sentence_labels"].sum())
            assert numbers["label_1_share"] == pytest.approx(stored["next_sentence_labels"].mean())
            a = ((stored["segment_ids"] == 0) & (stored["input_mask"] == 1)).sum(axis=1) - 2
            assert np.array_equal(numbers["length_a"], a)
            assert np.array_equal(numbers["length_a"] + numbers["length_b"] + 3, stored["input_mask"].sum(axis=1))
    # the build counted the same while it wrote the examples
    assert (predictions, tokens) == (counters["masked_positions"], counters["instance_tokens"])
    if name != "mlm":
        assert labels == counters["next_sentence_label_1"]


def _spans(inputs, targets, sentinels, lead):
    """(noise tokens, raw tokens, span lengths) of one span-corruption example, walked token by token."""
    body = [t for t in inputs if t != 0][lead:-1]
    out = [t for t in targets if t != 0][:-1]
    lengths = []
    for t in out:
        if t in sentinels:
            lengths.append(0)
        else:
            lengths[-1] += 1
    noise = sum(lengths)
    return noise, len(body) - len(lengths) + noise, lengths


@pytest.mark.parametrize("name", ["span_corruption", "ul2", "prefix_lm", "decoder_only"])
def test_noise_density_and_span_lengths(built, name):
    _, builds = built
    manifest, version_dir = builds[name]
    counters = manifest["counters"]["objective"]
    numbers = measure_version(Corpus(version_dir))["splits"]["train"]  # one-stream builds: all in train
    stored = read_parquet(version_dir)
    if name != "ul2":
        assert (numbers["noise_tokens"], numbers["raw_tokens"]) == (counters["noise_tokens"], counters["raw_tokens"])
    if name == "span_corruption":
        sentinels = set(manifest["tokenizer"]["special_ids"]["extra_ids"])
        walked = [_spans(i, t, sentinels, 0) for i, t in zip(stored["inputs"], stored["targets"])]
        lengths = sum((w[2] for w in walked), [])
        assert numbers["noise_density"] == pytest.approx(sum(w[0] for w in walked) / sum(w[1] for w in walked))
        assert sorted(numbers["span_lengths"].tolist()) == sorted(lengths)
        assert numbers["mean_span_length"] == pytest.approx(counters["noise_tokens"] / counters["noise_spans"])
    if name == "ul2":
        sentinels = set(manifest["tokenizer"]["special_ids"]["extra_ids"])
        for index, d in enumerate(manifest["objective"]["params"]["denoisers"]):
            per = numbers["denoisers"][index]
            rows = stored["denoiser"][:, 0] == index
            assert per["examples"] == rows.sum() == counters.get(f"denoiser_{index}", 0)
            assert (per["noise_tokens"], per["raw_tokens"]) == (counters.get(f"denoiser_{index}_noise_tokens", 0), counters.get(f"denoiser_{index}_raw_tokens", 0))
            if rows.any() and not d["prefix_lm"]:
                walked = [_spans(i, t, sentinels, 1) for i, t in zip(stored["inputs"][rows], stored["targets"][rows])]
                assert sorted(per["span_lengths"].tolist()) == sorted(sum((w[2] for w in walked), []))
                assert per["noise_density"] == pytest.approx(sum(w[0] for w in walked) / sum(w[1] for w in walked))
        assert sum(p["noise_tokens"] for p in numbers["denoisers"]) == numbers["noise_tokens"]
    if name == "decoder_only":
        assert numbers["noise_tokens"] == int(((stored["input_ids"] != 0).sum(axis=1) - stored["prefix_length"][:, 0]).sum())
        assert numbers["noise_tokens"] == int(stored["loss_mask"].sum())


def test_clm_documents_per_row(built):
    _, builds = built
    manifest, version_dir = builds["clm"]
    numbers = measure_version(Corpus(version_dir))["splits"]["train"]
    stored = read_parquet(version_dir)
    assert numbers["documents_per_row"].tolist() == [len(set(row[row > 0].tolist())) for row in stored["segment_ids"]]
    assert numbers["piece_lengths"].sum() == numbers["tokens"]


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.references, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "data", "action", "srcset"):
                (self.images if tag == "img" and key == "src" else self.references).append(value)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_html_page_is_self_contained_and_every_image_decodes(built, name, tmp_path):
    from matplotlib.image import imread

    _, builds = built
    page_path = tmp_path / "report.html"
    code, printed = run_cli("report", builds[name][1], "--html", page_path)
    assert code == 0 and str(page_path) in printed
    text = page_path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    assert "body" in page.tags and not page.references
    assert "http:" not in text and "https:" not in text and "url(" not in text
    assert len(page.images) >= 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(io.BytesIO(data), format="png").ndim == 3


def test_terminal_table_sample_and_progress(built):
    _, builds = built
    manifest, version_dir = builds["mlm_nsp"]
    code, printed = run_cli("report", version_dir)
    assert code == 0
    assert "padding_fraction" in printed and "label_1_share" in printed and f"{manifest['totals']['train']['examples']:,}" in printed
    progress, out = io.StringIO(), io.StringIO()
    report(version_dir, sample=5, out=out, progress=progress)
    assert "an even sample" in out.getvalue()
    assert "2/2 files" in progress.getvalue() and "1/1 files" in progress.getvalue()
    sampled = measure_version(Corpus(version_dir), sample=5)
    assert [sampled["splits"][s]["examples"] for s in SPLITS] == [5, 5]


def test_dead_letters_are_shown(tmp_path, sp):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"id": "a", "text": "A fine sentence here. And another one."}\n{"id": "b", "text": 7}\nnot json\n' * 3)
    _, version_dir = build(tmp_path / "out", "--input", corpus, "--objective", "clm", "--seq-len", 16, "--num-shards", 1, "--max-drop-fraction", 0.9)
    page = tmp_path / "report.html"
    assert run_cli("report", version_dir, "--html", page)[0] == 0
    text = page.read_text(encoding="utf-8")
    assert "Dead letters" in text and "not json" in text


def test_a_flipped_byte_names_the_damaged_shard(built, tmp_path, capsys):
    _, builds = built
    copy = tmp_path / "copy"
    shutil.copytree(builds["mlm_nsp"][1], copy)
    victim = shard_files(str(copy), "validation", "parquet")[0]
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 3] ^= 0x10
    open(victim, "wb").write(bytes(data))
    code, printed = run_cli("report", copy)
    error = capsys.readouterr().err
    assert code == 1 and victim in error and "sha256" in error and "padding" not in printed


def test_a_missing_matplotlib_is_named_with_the_extra(built, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees when it is not installed
    code, _ = run_cli("report", built[1]["clm"][1], "--html", tmp_path / "r.html")
    assert code == 1 and "pip install 'tokenmill[report]'" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_both_commands_take_seconds_on_the_sample_corpus(tmp_path):
    _, version_dir = build(tmp_path / "sample", "--objective", "mlm_nsp", "--seq-len", 128, "--num-shards", 2)
    timings = {}
    for name, args in {"show": ("show", version_dir, "-n", 5), "table": ("report", version_dir), "html": ("report", version_dir, "--html", tmp_path / "r.html")}.items():
        started = time.monotonic()
        code, _ = run_cli(*args)
        timings[name] = time.monotonic() - started
        assert code == 0
    assert max(timings.values()) < 30, timings  # seconds each on an idle machine; the bound leaves room for a busy one


@pytest.mark.parametrize("name", ["clm", "mlm_nsp", "ul2", "decoder_only"])
def test_shard_by_shard_tallies_add_up_to_the_whole_split(built, name):
    """The report reads a shard at a time; the merged figures are those of the split read whole."""
    manifest, version_dir = built[1][name]
    by_shard = measure_version(Corpus(version_dir))["splits"]["train"]
    whole = summarize(tally(manifest, read_parquet(version_dir)))
    assert by_shard.keys() == whole.keys()
    for key, value in whole.items():
        if key == "denoisers":
            for one, other in zip(by_shard[key], value):
                assert {k: v for k, v in one.items() if k != "span_lengths"} == {k: v for k, v in other.items() if k != "span_lengths"}
                assert sorted(one["span_lengths"].tolist()) == sorted(other["span_lengths"].tolist())
        elif key == "top_tokens":
            assert [a.tolist() for a in by_shard[key]] == [a.tolist() for a in value]
        elif isinstance(value, np.ndarray):
            assert sorted(by_shard[key].tolist()) == sorted(value.tolist()), key
        else:
            assert by_shard[key] == pytest.approx(value), key
