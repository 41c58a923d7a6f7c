"""Dataflow, offline: the Flex Template's metadata, launcher and image, and the checks before a job is submitted."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import pytest

from corpus_tools import IN_MEMORY, run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(REPO, "deploy", "flex_template")
DATAFLOW = ["--runner", "DataflowRunner", "--project", "tokenmill-test", "--region", "us-central1", "--temp_location", "gs://tokenmill-test/tmp"]


def subparser(name):
    from pipelines.cli import make_parser, subcommand

    return subcommand(make_parser(), name)


def committed_metadata() -> dict:
    with open(os.path.join(TEMPLATE, "metadata.json"), encoding="utf-8") as f:
        return json.load(f)


def test_template_metadata_names_every_build_flag_and_keep():
    names = {p["name"] for p in committed_metadata()["parameters"]}
    flags = {a.option_strings[0] for a in subparser("build")._actions if a.option_strings and a.option_strings[0] != "-h"}  # noqa: SLF001
    expected = {flag[2:].replace("-", "_") for flag in flags} | {"keep"}
    assert expected - names == set(), "build flags missing from deploy/flex_template/metadata.json"
    assert names - expected == set()
    required = {p["name"] for p in committed_metadata()["parameters"] if not p["isOptional"]}
    assert required == {"input", "output"}


def test_committed_metadata_is_generated_from_the_cli():
    result = subprocess.run([sys.executable, "-m", "deploy.template"], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == committed_metadata(), "regenerate: python -m deploy.template > deploy/flex_template/metadata.json"


def test_template_parameters_become_the_rebuild_command_line():
    from deploy.template import template_argv

    argv = [
        "--input=gs://b/a/*.jsonl,gs://b/b/*.jsonl", "--input_format=jsonl", "--seq_len=2048", "--whole_word_mask=false",
        "--random_roll=true", "--mode_tokens=false", "--no_progress=true", "--keep=5",
        "--runner=DataflowRunner", "--setup_file=/template/setup.py", "--job_name", "tokenmill-nightly",
    ]
    assert template_argv(argv, subparser("rebuild")) == [
        "--input=gs://b/a/*.jsonl", "--input=gs://b/b/*.jsonl", "--input-format=jsonl", "--seq-len=2048",
        "--random-roll", "--no-mode-tokens", "--no-progress", "--keep=5",
        "--runner=DataflowRunner", "--setup_file=/template/setup.py", "--job_name", "tokenmill-nightly",
    ]


def test_the_template_launcher_translates_the_rebuild_for_dataflow(tmp_path, sample_corpus_path, tokenizer_path):
    """deploy/flex_template/main.py as the launcher runs it: a script, `--name=value` parameters, Dataflow options."""
    params = [f"--input={sample_corpus_path}", f"--tokenizer={tokenizer_path}", f"--output={tmp_path / 'out'}", "--seq_len=128", "--num_shards=4", "--no_progress=true"]
    dataflow = [f"{DATAFLOW[i]}={DATAFLOW[i + 1]}" for i in range(2, len(DATAFLOW), 2)]  # the runner is implied
    result = subprocess.run(
        [sys.executable, os.path.join(TEMPLATE, "main.py"), *params, *dataflow, f"--setup_file={REPO}/setup.py", "--dry_run=True"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["Rebuilding: nothing is published yet.", "Dry run: the pipeline was translated for the runner; nothing ran."]


def test_an_up_to_date_template_launch_still_submits_a_job_that_verifies(tmp_path, sample_corpus_path, tokenizer_path):
    """A Flex Template launcher that exits without a job fails the launch, so the nightly job verifies LATEST instead."""
    args = ["--input", sample_corpus_path, "--tokenizer", tokenizer_path, "--seq-len", 128, "--num-shards", 2, "--no-progress"]
    code, printed = run_cli("rebuild", "--output", tmp_path / "out", *args, *IN_MEMORY)
    assert code == 0, printed
    code, printed = run_cli(
        "rebuild", "--output", tmp_path / "out", *args, *DATAFLOW, "--setup_file", os.path.join(REPO, "setup.py"),
        "--template_location", "gs://tokenmill-test/templates/job.json", "--dry_run=True",
    )
    assert code == 0, printed
    assert printed.startswith("Up to date: ") and "submitted a job that verifies it" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--setup_file", "setup.py"], "workers cannot reach this machine's disk: put --output {out}, --input {corpus} on storage they share"),
        ([], "Dataflow workers need tokenmill installed: pass --setup_file"),
    ],
)
def test_a_dataflow_run_that_could_not_work_fails_before_submitting(tmp_path, capsys, sample_corpus_path, args, message):
    out = tmp_path / "out"
    code, _ = run_cli("rebuild", "--input", sample_corpus_path, "--output", out, *DATAFLOW, *args)
    assert code == 2
    assert message.format(out=out, corpus=sample_corpus_path) in capsys.readouterr().err
    assert not out.exists()


def _dockerfile_copies(path) -> list[list[str]]:
    """The sources of every COPY that reads the build context (not another stage)."""
    with open(path, encoding="utf-8") as f:
        lines = [line.split() for line in f if line.startswith("COPY ")]
    return [words[1:-1] for words in lines if not any(w.startswith("--from=") for w in words)]


def _setup_packages() -> tuple[str, ...]:
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["PACKAGES"]]
    return ast.literal_eval(value)


def test_the_docker_build_context_holds_what_the_dockerfile_copies():
    sources = [s for srcs in _dockerfile_copies(os.path.join(TEMPLATE, "Dockerfile")) for s in srcs]
    for source in sources:
        assert os.path.exists(os.path.join(REPO, source)), f"the Dockerfile copies {source}, which the repository root lacks"
    assert set(_setup_packages()) <= set(sources) and "setup.py" in sources
    with open(os.path.join(TEMPLATE, "Dockerfile.dockerignore"), encoding="utf-8") as f:
        included = {line.strip()[1:] for line in f if line.startswith("!")}
    assert included == set(sources), "Dockerfile.dockerignore must let in exactly what the Dockerfile copies"
    with open(os.path.join(TEMPLATE, "Dockerfile"), encoding="utf-8") as f:
        env = dict(re.findall(r"^ENV (\w+)=(\S+)$", f.read(), re.M))
    for name in ("FLEX_TEMPLATE_PYTHON_PY_FILE", "FLEX_TEMPLATE_PYTHON_SETUP_FILE"):
        assert env[name].startswith("/template/") and os.path.isfile(os.path.join(REPO, env[name][len("/template/") :])), name
