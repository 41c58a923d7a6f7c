"""Local runs: every core, and a small fixed cost (no construction-time type inference, a garbage collector that skips Beam's objects)."""

from __future__ import annotations

import os
import subprocess
import sys

from apache_beam.options.pipeline_options import DirectOptions, SetupOptions, TypeOptions

from corpus_tools import ask_workers
from runners.local import FREEZE_HEAP, pipeline_options


def test_with_no_runner_named_a_run_uses_every_core_and_skips_type_inference():
    options = pipeline_options([])
    assert options.view_as(DirectOptions).direct_num_workers == os.cpu_count()
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    assert options.view_as(TypeOptions).pipeline_type_check is False
    assert options.view_as(SetupOptions).beam_plugins == [FREEZE_HEAP]


def test_the_user_flags_win():
    options = pipeline_options(["--direct_num_workers=1", "--direct_running_mode=in_memory", "--pipeline_type_check", "--beam_plugins=mine"])
    assert options.view_as(DirectOptions).direct_num_workers == 1
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert options.view_as(TypeOptions).pipeline_type_check is True
    assert options.view_as(SetupOptions).beam_plugins == ["mine", FREEZE_HEAP]


def test_a_named_runner_gets_the_options_as_given():
    options = pipeline_options(["--runner=DataflowRunner"])
    assert options.view_as(TypeOptions).pipeline_type_check is True
    assert options.view_as(SetupOptions).beam_plugins is None


def test_worker_processes_import_the_freeze_heap_plugin(tmp_path):
    assert ask_workers(tmp_path, lambda: str(FREEZE_HEAP in sys.modules)) == {"True"}


def test_a_process_that_imports_freeze_heap_freezes_its_heap_then_and_before_the_exit_collections():
    def freeze_counts(code: str) -> str:
        report = "import atexit, gc; at_import = [0]; atexit.register(lambda: print(at_import[0] > 0, gc.get_freeze_count() > at_import[0])); "
        later = "; at_import[0] = gc.get_freeze_count(); made_later = [[] for _ in range(1000)]"
        return subprocess.run([sys.executable, "-c", report + code + later], capture_output=True, text=True, check=True).stdout.strip()

    assert freeze_counts(f"import {FREEZE_HEAP}") == "True True"
    assert freeze_counts("from pipelines.cli import main; main(['build', '--input', '/no/such/*.jsonl'])") == "True True", "the tokenmill command"
    assert freeze_counts("pass") == "False False"
