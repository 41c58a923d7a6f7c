"""Checks that a remote runner (Dataflow, a Dask cluster, ...) can run a build, made before anything is submitted.

tokenmill runs on Google Cloud Dataflow from its own command with Beam's Dataflow options:

    tokenmill rebuild --input 'gs://B/raw/*.jsonl.gz' --tokenizer gs://B/spm.model --output gs://B/corpus \\
        --runner DataflowRunner --project P --region R --temp_location gs://B/tmp --setup_file ./setup.py \\
        --machine_type n2-standard-4 --max_num_workers 32 [--sdk_container_image IMAGE]

(The Flex Template, which runs that same command, is `deploy/template.py`.)

`check_remote_runner` stops, before anything is submitted, the two mistakes that
otherwise fail only on the workers, minutes later: workers without tokenmill,
and paths on the launching machine's disk (for any remote runner: Dataflow,
a Dask cluster, ...).
"""

from __future__ import annotations

from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, TestOptions, WorkerOptions

from runners.local import is_dask, is_local, runner_kind
from transforms.errors import ConfigError


def check_remote_runner(inputs: Sequence[str], output: str, beam_args: Sequence[str], shared_filesystem: bool = False) -> None:
    """Raise `ConfigError` when a remote runner could not read `inputs` or write `output` (see the module doc).

    Local paths are fine where the workers share this machine's disk: with
    `shared_filesystem` (the user says every worker mounts them), or a Dask
    scheduler on this machine's loopback address (its workers are here).
    """
    options = PipelineOptions(list(beam_args))
    if is_local(options):
        return
    if is_dask(options):
        try:
            from runners.dask import shares_this_machine
        except ImportError as e:
            raise ConfigError(f"--runner DaskRunner needs Dask: pip install 'tokenmill[dask]' ({e})") from e
        shared_filesystem = shared_filesystem or shares_this_machine(options)
    runner = options.view_as(StandardOptions).runner
    if runner_kind(options) == "dataflow" and not (options.view_as(SetupOptions).setup_file or options.view_as(WorkerOptions).sdk_container_image):
        raise ConfigError(
            "Dataflow workers need tokenmill installed: pass --setup_file ./setup.py (from a tokenmill checkout) "
            "or --sdk_container_image with an image that has it (the worker target of deploy/flex_template/Dockerfile)"
        )
    if options.view_as(TestOptions).dry_run:
        return  # only translated: no worker reads or writes anything
    local = [f"--output {output}"] if "://" not in output else []
    local += [f"--input {p}" for p in inputs if "://" not in p]
    if not inputs:
        local.append("--input (by default the built-in sample corpus)")
    if local and not shared_filesystem:
        raise ConfigError(
            f"{runner} workers cannot reach this machine's disk: put {', '.join(local)} on storage they share, such as gs://, "
            "or pass --shared-filesystem if every worker mounts these paths (NFS, Lustre)"
        )
