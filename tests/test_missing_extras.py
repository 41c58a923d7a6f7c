"""A flag whose optional package is not installed fails while planning, in one line naming the extra to install.

The package is made absent for the test by `sys.modules[name] = None`,
which is how Python itself marks a module that cannot be imported.
"""

from __future__ import annotations

import sys

import pytest

from corpus_tools import IN_MEMORY, run_cli


def without(monkeypatch, package: str) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    "package, args, message",
    [
        ("array_record", ["--formats", "tfrecord,array_record"], "--formats array_record needs array-record, which is not installed: pip install 'tokenmill[array_record]'"),
        ("google.cloud.storage", ["--tokenizer", "gs://bucket/spm.model"], "--tokenizer gs://bucket/spm.model needs apache-beam[gcp], which is not installed: pip install 'tokenmill[gcp]'"),
    ],
)
def test_a_build_flag_without_its_package_fails_at_planning(tmp_path, capsys, monkeypatch, package, args, message):
    without(monkeypatch, package)
    output = tmp_path / "out"
    code, _ = run_cli("build", "--output", output, "--num-shards", 1, *args, *IN_MEMORY)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in line
    assert not output.exists(), "nothing ran"


def test_dataflow_without_the_gcp_extra_fails_at_planning(tmp_path, capsys, monkeypatch):
    without(monkeypatch, "google.cloud.storage")
    code, _ = run_cli("build", "--output", "gs://bucket/out", "--runner", "DataflowRunner", "--setup_file", "./setup.py")
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "--runner DataflowRunner needs apache-beam[gcp]" in line and "tokenmill[gcp]" in line


@pytest.mark.parametrize(
    "module, call, package, extra",
    [
        ("readers.hf", lambda m, out: m.hf_dataset(out), "datasets", "hf"),
        ("readers.tf_data", lambda m, out: m.tf_dataset(out), "tensorflow", "tf"),
        ("readers.grain", lambda m, out: m.grain_dataset(out, batch_size=2), "grain", "jax"),
    ],
)
def test_a_reader_without_its_framework_names_the_extra(tmp_path, monkeypatch, module, call, package, extra):
    import importlib

    from transforms.extras import MissingExtra

    reader = importlib.import_module(module)
    without(monkeypatch, package)
    with pytest.raises(ImportError, match=rf"pip install 'tokenmill\[{extra}\]'") as raised:
        call(reader, str(tmp_path / "no-corpus-needed"))
    assert isinstance(raised.value, MissingExtra)
