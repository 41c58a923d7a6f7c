"""The Dataflow path, offline: the whole pipeline translates, and the package a worker installs is complete."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

from corpus_tools import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("pipelines", "transforms", "transforms/objectives", "schemas", "runners", "readers")


def test_dataflow_runner_translates_the_whole_pipeline(tmp_path, sample_corpus_path):
    code, printed = run_cli(
        "build", "--output", tmp_path / "out", "--input", sample_corpus_path,
        "--runner", "DataflowRunner", "--project", "tokenmill-test", "--region", "us-central1",
        "--temp_location", "gs://tokenmill-test/tmp", "--setup_file", os.path.join(REPO, "setup.py"),
        "--dry_run=True",
    )
    assert code == 0, printed
    assert "Dry run" in printed


def test_source_distribution_holds_every_package(tmp_path):
    """What `--setup_file` ships to workers: Beam builds this same sdist with `python -m build --no-isolation`."""
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), REPO], check=True, capture_output=True)
    (sdist,) = [p for p in os.listdir(tmp_path) if p.endswith(".tar.gz")]
    with tarfile.open(tmp_path / sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, package
    assert "setup.py" in names and "transforms/objectives/clm.py" in names
