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


def _translated_graph_bytes(plan) -> int:
    """Bytes of the pipeline graph Dataflow gets for a build (its Runner v2 job stages this proto), without submitting it."""
    from pipelines.build import BuildCorpus
    from runners.local import run

    result = run(
        lambda p, _: p | BuildCorpus(plan),
        ["--runner", "DataflowRunner", "--project", "tokenmill-test", "--region", "us-central1", "--temp_location", "gs://tokenmill-test/tmp", "--dry_run=True"],
        show_progress=False,
    )
    return result.job.proto_pipeline.ByteSize()


def test_the_job_graph_does_not_grow_with_the_input_bytes(tmp_path, sample_corpus_path):
    """The same 256 files planned at 4 MiB (1 GB) and at 4 GiB each (1 TB): 262k read ranges, planned on workers."""
    import dataclasses

    from pipelines.build import plan_build
    from pipelines.config import BuildConfig

    plan = plan_build(BuildConfig(inputs=(sample_corpus_path,), output=str(tmp_path / "out")))

    def planned(file_bytes: int):
        inputs = [{"path": f"gs://corpus/part-{i:05d}.jsonl", "size": file_bytes, "checksum": "0" * 32, "last_updated": 1.7e9} for i in range(256)]
        return dataclasses.replace(plan, inputs=inputs, num_buckets=plan.config.buckets_for(256 * file_bytes))

    small = _translated_graph_bytes(planned(4 << 20))
    large = _translated_graph_bytes(planned(4 << 30))
    assert large < 1 << 20
    assert abs(large - small) < 1024, (small, large)
