"""The command line: help, bad configuration failing at once, train-tokenizer, progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from corpus_tools import IN_MEMORY, run_cli


def test_help_documents_every_build_flag():
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "build", "--help"], capture_output=True, text=True, check=True)
    for flag in ("--objective", "--input", "--input-format", "--text-field", "--id-field", "--tokenizer", "--output", "--seq-len", "--packing", "--formats", "--num-shards", "--seed", "--validation-fraction", "--compression"):
        assert flag in result.stdout, flag
    assert "Beam" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-shards", "0"], "--num-shards: must be at least 1"),
        (["--validation-fraction", "1.5"], "--validation-fraction must be in [0, 1)"),
        (["--formats", "tfrecord,csv"], "--formats"),
        (["--objective", "gpt"], "--objective"),
        (["--input", "/no/such/dir/*.jsonl"], "--input '/no/such/dir/*.jsonl' matched no files"),
        (["--noise-density", "0.3"], "--noise-density applies to span_corruption"),
        (["--seq-len", "1"], "--seq-len must be at least 2"),
        (["--sead", "3"], "did you mean --seed?"),
        (["--version", "../escape"], "--version must be a plain name"),
    ],
)
def test_bad_configuration_fails_before_the_pipeline_starts(tmp_path, capsys, args, message):
    output = tmp_path / "out"
    code, _ = run_cli("build", "--output", output, *args, *IN_MEMORY)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_a_file_that_is_not_a_sentencepiece_model_is_a_config_error(tmp_path, capsys):
    bogus = tmp_path / "bogus.model"
    bogus.write_bytes(b"not a model")
    code, _ = run_cli("build", "--output", tmp_path / "out", "--tokenizer", bogus, *IN_MEMORY)
    assert code == 2
    assert "--tokenizer" in capsys.readouterr().err


def test_an_input_of_unknown_format_is_a_config_error_for_every_command(tmp_path, capsys):
    data = tmp_path / "corpus.bin"
    data.write_text('{"text": "x"}\n')
    for args in (["build", "--output", tmp_path / "out", *IN_MEMORY], ["train-tokenizer", "--output", tmp_path / "spm.model"]):
        code, _ = run_cli(*args, "--input", data)
        assert code == 2
        assert "pass --input-format" in capsys.readouterr().err


def test_train_tokenizer_reserves_every_special_token(tmp_path, sample_corpus_path):
    from transforms.vocab import APPENDED_ORDER, Vocab

    model = tmp_path / "tiny.model"
    code, printed = run_cli("train-tokenizer", "--input", sample_corpus_path, "--output", model, "--vocab-size", 1000, "--sample-size", 800, "--extra-ids", 20)
    assert code == 0 and printed.endswith(f"Trained a 1,000-piece SentencePiece model on 800 documents: {model}\n")
    vocab = Vocab.from_model_proto(model.read_bytes(), extra_ids=20)
    assert vocab.size == vocab.model_size  # nothing had to be appended
    assert (vocab.pad, vocab.eos) == (0, 1)
    ids = [vocab.specials[p] for p in APPENDED_ORDER] + list(vocab.sentinels)
    assert len(set(ids)) == len(ids) and max(ids) < vocab.model_size
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert vocab.mask not in sp.encode("Put a [MASK] here and an <extra_id_0> there.")


def test_build_prints_progress_and_a_summary(tmp_path, sample_corpus_path):
    code, printed = run_cli("build", "--output", tmp_path / "out", "--input", sample_corpus_path, "--num-shards", 2, *IN_MEMORY)
    assert code == 0
    assert "100.0% of input read" in printed and "docs tokenized" in printed and "tokens/s" in printed
    assert "documents used" in printed and "Output: " in printed
    latest = (tmp_path / "out" / "LATEST").read_text().strip()
    manifest = json.loads((tmp_path / "out" / "versions" / latest / "manifest.json").read_text())
    assert os.path.normpath(printed.strip().rsplit("Output: ", 1)[1]) == str(tmp_path / "out" / "versions" / latest)
    assert manifest["counters"]["documents_used"] > 0


def test_input_without_tokenizer_names_both_remedies(tmp_path, capsys, sample_corpus_path):
    """The sample tokenizer stays the default for the sample corpus only: it would silently mis-tokenize a user's data."""
    from pipelines.cli import main

    for command in ("build", "rebuild"):
        code = main([command, "--input", sample_corpus_path, "--output", str(tmp_path / "out"), *IN_MEMORY])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "--tokenizer" in err and "tokenmill train-tokenizer" in err
    assert not (tmp_path / "out").exists()


def test_train_tokenizer_reads_a_bounded_sample_shows_progress_and_says_the_real_size(tmp_path, sample_docs):
    """--read-mb 1 of four files of 0.4-0.6 MB reads some of them, never all; a vocabulary the sample cannot fill is reported as it came out."""
    import sentencepiece as spm

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    quarter = len(sample_docs) // 4
    for i in range(4):
        (inputs / f"part-{i}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in sample_docs[i * quarter : (i + 1) * quarter]))
    model = tmp_path / "spm.model"
    code, printed = run_cli("train-tokenizer", "--input", inputs, "--output", model, "--vocab-size", 60000, "--read-mb", 1, "--extra-ids", 20)
    assert code == 0, printed
    lines = printed.splitlines()
    read_line = next(line for line in lines if line.startswith("  reading:"))
    documents = int(read_line.rsplit(", ", 1)[1].split()[0].replace(",", ""))
    assert quarter <= documents < 4 * quarter, read_line
    assert any(line.startswith("  training on ") for line in lines)
    pieces = spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    assert pieces < 60000 and lines[-1] == f"Trained a {pieces:,}-piece SentencePiece model (asked for 60,000: the sample holds no more) on {documents:,} documents: {model}"


def test_train_tokenizer_kind_bpe_makes_a_tokenizer_json_a_build_takes_by_role(tmp_path, sample_docs):
    """--kind bpe writes tokenizer.json and a config naming pad and eos; a build finds them, and the printed size is the real one."""
    from tokenizers import Tokenizer

    inputs = tmp_path / "docs.jsonl"
    inputs.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:300]))
    directory = tmp_path / "bpe"
    code, printed = run_cli("train-tokenizer", "--kind", "bpe", "--input", inputs, "--output", directory, "--vocab-size", 600, "--extra-ids", 20)
    assert code == 0, printed
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    assert printed.splitlines()[-1] == f"Trained a {size:,}-piece byte-level BPE tokenizer.json on 300 documents: {directory}"
    assert json.loads((directory / "tokenizer_config.json").read_text()) == {"pad_token": "<pad>", "eos_token": "<|endoftext|>"}

    out = tmp_path / "out"
    code, printed = run_cli("build", "--input", inputs, "--tokenizer", directory, "--objective", "span_corruption", "--inputs-length", 64, "--num-shards", 1, "--extra-ids", 20, "--output", out, *IN_MEMORY)
    assert code == 0, printed
    manifest = json.loads(next(out.glob("versions/*/manifest.json")).read_text())
    special = manifest["tokenizer"]["special_ids"]
    assert special["pad"] == tokenizer.token_to_id("<pad>") and special["eos"] == tokenizer.token_to_id("<|endoftext|>")
    assert special["extra_ids"] == [tokenizer.token_to_id(f"<extra_id_{k}>") for k in range(20)]
    assert manifest["tokenizer"]["vocab_size"] == size
