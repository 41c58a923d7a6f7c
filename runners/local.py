"""Run a pipeline: on every local core by default, or on whatever runner the user names.

Beam 2.77's DirectRunner first tries to download the Prism runner, and Prism
ignores `--direct_num_workers`. So when no `--runner` is given we use the
`FnApiRunner` in multi-processing mode with one worker per core, and keep the
cost of a run small: no construction-time type inference (Beam infers an
output type for every step by reading its bytecode, ~0.3 s, and our steps
declare none), and processes whose garbage collector skips what Beam's import
left and the collections of their exit (`runners.freeze_heap`). A user's own
`--runner`, `--direct_*` and `--pipeline_type_check` flags always win. Local
runs print progress every two seconds and send Beam's own logging to a file,
so the terminal shows what matters.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Callable, Iterator, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, SetupOptions, StandardOptions, TypeOptions

from transforms.progress import read_totals
from transforms.publish_guard import refusal_line

FREEZE_HEAP = "runners.freeze_heap"
LOCAL_RUNNERS = {"DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner"}
_PROGRESS_EVERY = 2.0


def _given(beam_args: Sequence[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in beam_args if a.startswith("--")}


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
    """Beam options from the user's flags, with all-core local defaults when no runner is named."""
    options = PipelineOptions(list(beam_args))
    if options.view_as(StandardOptions).runner is None:
        given = _given(beam_args)
        direct = options.view_as(DirectOptions)
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = os.cpu_count() or 1
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if not given & {"--pipeline_type_check", "--no_pipeline_type_check"}:
            options.view_as(TypeOptions).pipeline_type_check = False
        setup = options.view_as(SetupOptions)
        setup.beam_plugins = [*(setup.beam_plugins or []), FREEZE_HEAP]
    return options


def unknown_beam_args(args: Sequence[str], also_known: Sequence[str] = ()) -> list[str]:
    """Flags that no Beam option (of any runner) recognises, each with a suggestion if one is close.

    `also_known` adds the caller's own flags to the suggestions.
    """
    import argparse
    import difflib

    if any("dask" in a.lower() for a in args):  # a Dask flag or runner name
        with contextlib.suppress(ImportError):  # without the dask extra, its flags stay unknown
            importlib.import_module("runners.dask")  # registers Beam's DaskOptions
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 — the same registry Beam itself parses with
    _, unknown = parser.parse_known_args(list(args))
    known = [o for action in parser._actions for o in action.option_strings] + list(also_known)  # noqa: SLF001
    out = []
    for arg in unknown:
        close = difflib.get_close_matches(arg.split("=", 1)[0], known, n=1) if arg.startswith("--") else []
        out.append(f"{arg} (did you mean {close[0]}?)" if close else arg)
    return out


def runner_for(options: PipelineOptions, total_input_bytes: int = 0):
    """An explicit FnApiRunner when no runner is named (never the Prism download); tokenmill's DaskRunner for `DaskRunner`.

    The FnApiRunner's worker processes are told the `--beam_plugins` to
    import at their start (it passes them no options of its own). The
    DaskRunner is Beam's with its gaps filled (`runners.dask`), given a
    partition count that keeps each partition's input small.
    """
    if is_dask(options):
        from runners.dask import DaskRunner, npartitions_for

        return DaskRunner(npartitions_for(total_input_bytes))
    if options.view_as(StandardOptions).runner is None:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
        from google.protobuf import struct_pb2

        worker_options = struct_pb2.Struct()
        worker_options.update({"beam_plugins": options.view_as(SetupOptions).beam_plugins or []})
        info = beam_provision_api_pb2.ProvisionInfo(retrieval_token="unused-retrieval-token", pipeline_options=worker_options)
        return FnApiRunner(provision_info=ExtendedProvisionInfo(info))
    return None


def runner_kind(options: PipelineOptions) -> str:
    """The named runner as Beam's short names go: `DaskRunner`, `dask` and Beam's full class path are all "dask"."""
    return str(options.view_as(StandardOptions).runner).rsplit(".", 1)[-1].lower().removesuffix("runner")


def is_dask(options: PipelineOptions) -> bool:
    return runner_kind(options) == "dask"


def _dask_here(options: PipelineOptions) -> bool:
    """A Dask cluster on this machine: its workers can write progress files where the launcher reads them."""
    if not is_dask(options):
        return False
    from runners.dask import shares_this_machine

    return shares_this_machine(options)


def is_local(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner
    return runner is None or str(runner).rsplit(".", 1)[-1] in LOCAL_RUNNERS


@contextlib.contextmanager
def stderr_to(path: str) -> Iterator[None]:
    """Send file descriptor 2 (ours and the worker processes') to `path` while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


MALLOC_ARENAS = "2"
WORKER_MALLOC = {
    "MALLOC_ARENA_MAX": MALLOC_ARENAS,
    "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}


@contextlib.contextmanager
def lean_memory() -> Iterator[None]:
    """Tune glibc's malloc for the launcher and its worker processes while the block runs.

    Arenas: glibc may give every thread that allocates an arena of its own
    (up to 8 per core), and Beam's launcher and workers run many threads
    passing large buffers between them; memory freed in one arena cannot
    serve another, so resident memory grows well past what a process holds.
    Two per process.

    Reuse: a worker allocates and frees arrays of megabytes for every
    bucket and shard. By default glibc maps the largest afresh and unmaps
    them on free, and hands the heap's free top back once it passes twice
    that size; with a `malloc_trim` after each element on top (as workers
    did to keep their resident size down), a 4x clm build faulted in 2.4 GB
    of zeroed pages per worker (600 k page faults, 3 s of its CPU). Here
    arrays under 64 MiB come from the heap, which keeps up to 256 MiB free
    for the next one: 50-90 k faults, for peaks 35-175 MB higher over the
    benchmark's 4x builds (still under half their targets).

    The variables are read by each worker process at its start; a user's own
    setting of any of them wins.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    if "MALLOC_ARENA_MAX" not in os.environ:
        import ctypes

        m_arena_max = -8  # from glibc's malloc.h
        try:
            ctypes.CDLL(None).mallopt(m_arena_max, int(MALLOC_ARENAS))
        except (OSError, AttributeError):  # not glibc: nothing to tune
            pass
    added = {name: value for name, value in WORKER_MALLOC.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            del os.environ[name]


def _human(n: float) -> str:
    for unit in ("", "k", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}P"


class ProgressPrinter(threading.Thread):
    """Prints documents, tokens, rate and share of input read, every two seconds."""

    def __init__(self, directory: str, total_input_bytes: int, stream=None):
        super().__init__(daemon=True)
        self._directory = directory
        self._total = total_input_bytes
        self._stream = stream or sys.stdout
        self._done = threading.Event()
        self._start = time.monotonic()

    def line(self) -> str:
        t = read_totals(self._directory)
        elapsed = max(time.monotonic() - self._start, 1e-9)
        share = f"{min(1.0, t['input_bytes'] / self._total):6.1%} of input read | " if self._total else ""
        return (
            f"  {share}{_human(t['documents'])} docs tokenized | {_human(t['tokens'])} tokens | "
            f"{t['text_bytes'] / elapsed / 1e6:.1f} MB/s | {_human(t['tokens'] / elapsed)} tokens/s | {elapsed:.0f} s"
        )

    def run(self) -> None:
        while not self._done.wait(_PROGRESS_EVERY):
            print(self.line(), file=self._stream, flush=True)

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()


def run(
    construct: Callable[[beam.Pipeline, str | None], None],
    beam_args: Sequence[str] = (),
    total_input_bytes: int = 0,
    show_progress: bool = True,
    quiet: bool = True,
):
    """Build the pipeline with `construct(pipeline, progress_dir)`, run it and wait.

    Local runs, and runs on a Dask cluster on this machine, get a progress
    directory (watched by a `ProgressPrinter`) and `lean_memory` (which
    reaches the workers of a Dask cluster that Beam starts for the run);
    local runs also keep, with `quiet`, Beam's log in a temporary file that
    is printed only if the run fails.
    """
    options = pipeline_options(beam_args)
    local = is_local(options)
    here = local or _dask_here(options)
    progress_dir = tempfile.mkdtemp(prefix="tokenmill-progress-") if here and show_progress else None
    log_path = os.path.join(tempfile.gettempdir(), f"tokenmill-beam-{os.getpid()}.log") if local and quiet else None
    printer = ProgressPrinter(progress_dir, total_input_bytes) if progress_dir else None
    try:
        with stderr_to(log_path) if log_path else contextlib.nullcontext(), lean_memory() if here else contextlib.nullcontext():
            pipeline = beam.Pipeline(runner=runner_for(options, total_input_bytes), options=options)
            construct(pipeline, progress_dir)
            if printer:
                printer.start()
            result = pipeline.run()
            result.wait_until_finish()
    except BaseException as e:
        if log_path and os.path.exists(log_path) and refusal_line(e) is None:  # a refused publish says why in one line
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-20000:]
            print(f"Beam log (last part; full log in {log_path}):\n{tail}", file=sys.stderr)
        raise
    finally:
        if printer and printer.ident:
            printer.stop()
            print(printer.line(), flush=True)
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
    if log_path and os.path.exists(log_path):
        os.remove(log_path)
    return result
