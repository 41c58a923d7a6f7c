"""Run tokenmill on a Dask cluster: Beam's DaskRunner, with the gaps a build falls into filled.

    tokenmill build --input 'data/*.jsonl' --output corpus --runner DaskRunner --dask_client_address tcp://HOST:8786

Beam 2.77's DaskRunner turns each transform into dask.bag operations. As
shipped it cannot run a build, for five reasons in its translation:

- a ParDo with several outputs hands all of them to every consumer of any
  one (the tokenizer received the reader's counter dicts as documents);
- outputs emitted in `finish_bundle` are dropped (a bundle's outputs are
  collected before `finish_bundle` runs), and the tokenizer and the
  objective hold their parts per key until then;
- a side input is computed inside each task that reads it (`list(bag)`): every
  step upstream of it runs again per reading task, shards included, in a
  computation nested in a worker's only thread;
- only the bag of the last transform visited is computed, so a branch that
  does not feed it never runs;
- `Reshuffle` is a no-op and `Create` puts 128 elements in a partition, so a
  corpus of fewer than 128 read ranges is read and tokenized by one task.

`DaskRunner` below keeps the rest of Beam's runner as it is (its transform
overrides, the `Create`, `GroupByKey` and `Flatten` translations, the options
and the result) and replaces only the visitor and the ParDo translation that
carry these faults, and translates `Reshuffle` into a repartition. A
primitive it has no translation for (a `Read`, which Beam's runner silently
skips) fails at submission rather than producing nothing; `Impulse`, which
Beam's runner lacks, is translated. Runner metrics
are not collected; tokenmill's counters travel through the pipeline as data.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
from typing import Any
from urllib.parse import urlsplit

import apache_beam as beam
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.pvalue import PBegin, TaggedOutput
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask.overrides import _GroupAlsoByWindow, _Reshuffle, dask_overrides
from apache_beam.runners.dask.transform_evaluator import TRANSLATIONS, DaskBagOp, Flatten, NoOp, OneReceiver, get_windowed_value
from apache_beam.transforms.sideinputs import SideInputMap

from transforms.errors import ConfigError

DaskOptions = beam_dask.DaskOptions
PARTITIONS_PER_THREAD = 4
PARTITION_INPUT_BYTES = 64 << 20
SCHEDULER_TIMEOUT_SECONDS = 5  # to reach a scheduler before the build is given up
DEFAULT_SCHEDULER_PORT = 8786
_RESHUFFLE_NPARTITIONS = "reshuffle_npartitions"  # our key beside Beam's own in the ops' bag_kwargs


def _run_bundle(items, fn, label: str, window_fn, args, kwargs, tags, side_views, *side_values) -> list:
    """Run `fn` over one partition as one bundle, `finish_bundle` included; its outputs as values, or (tag, value) pairs if `tags`."""
    receivers = OneReceiver()
    side_inputs = [
        SideInputMap(view_class, options, [get_windowed_value(v, None) for v in values]) for (view_class, options), values in zip(side_views, side_values)
    ]
    handler = _OutputHandler(
        window_fn=window_fn,
        main_receivers=receivers[None],
        tagged_receivers=receivers,
        per_element_output_counter=None,
        output_batch_converter=None,
        process_yields_batches=False,
        process_batch_yields_elements=False,
    )
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn),
        handler,
        context=DoFnContext(label, state=None),
        side_inputs=side_inputs,
        input_args=args,
        input_kwargs=kwargs,
        user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam(),
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(get_windowed_value(item, window_fn))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    out = []
    for received in receivers.values:
        tag, windowed = (received.tag, received.value) if isinstance(received, TaggedOutput) else (None, received)
        out.append((tag, windowed.value) if tags else windowed.value)
    return out


def _select(pairs, tag) -> list:
    return [value for t, value in pairs if t == tag]


def _concat(partitions) -> list:
    return [item for partition in partitions for item in partition]


def _discard(items) -> list:
    return []


class ParDo(DaskBagOp):
    """A DoFn over each partition: every output kept (tagged when there are several), side inputs computed once, as task inputs."""

    def apply(self, input_bag, side_inputs=None):
        import dask

        transform = self.transform
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        views = [(type(si), si._view_options()) for si in self.applied.side_inputs]  # noqa: SLF001 — what Beam's own runners pass
        # A side input's value is its partitions by their own keys: the same tasks the main graph runs. (A bag given
        # to `dask.delayed` whole is optimised apart, under new keys, and every step upstream of it runs again.)
        values = [dask.delayed(_concat, pure=True)(bag.to_delayed(optimize_graph=False)) for bag in side_inputs or ()]
        tagged = len(self.applied.outputs) > 1
        return input_bag.map_partitions(
            _run_bundle, transform.fn, transform.label, main_input.windowing.windowfn, list(args), kwargs, tagged, views, *values
        )


class Reshuffle(DaskBagOp):
    """Spread elements over at least the run's number of partitions (a partition is a task; Beam's runner leaves them where they are)."""

    def apply(self, input_bag, side_inputs=None):
        return input_bag.repartition(npartitions=max(input_bag.npartitions, self.bag_kwargs[_RESHUFFLE_NPARTITIONS]))


class Impulse(DaskBagOp):
    """The one empty element a pipeline's root produces (Beam's runner has no translation for it)."""

    def apply(self, input_bag, side_inputs=None):
        import dask.bag

        return dask.bag.from_sequence([b""], npartitions=1)


_TRANSLATIONS = {**TRANSLATIONS, beam.Impulse: Impulse, beam.ParDo: ParDo, _Reshuffle: Reshuffle, _GroupAlsoByWindow: NoOp}


class _BagVisitor(PipelineVisitor):
    """Each PCollection's bag, made from its producer's; which PCollections no transform reads."""

    def __init__(self, bag_kwargs: dict[str, Any]):
        self.bag_kwargs = bag_kwargs
        self.bags: dict[beam.PCollection, Any] = {}
        self.read: set[beam.PCollection] = set()

    def visit_transform(self, node: AppliedPTransform) -> None:
        op_class = _TRANSLATIONS.get(type(node.transform))
        if op_class is None:
            raise NotImplementedError(f"the DaskRunner cannot run {node.full_label!r} (a {type(node.transform).__name__})")
        op = op_class(node, bag_kwargs=self.bag_kwargs)
        inputs = [p for p in node.inputs if not isinstance(p, PBegin)]
        sides = [si.pvalue for si in node.side_inputs]
        self.read.update(inputs + sides)
        bags = [self.bags[p] for p in inputs]
        main = bags if isinstance(op, Flatten) else (bags[0] if bags else None)
        result = op.apply(main, [self.bags[p] for p in sides])
        if len(node.outputs) == 1:
            self.bags[next(iter(node.outputs.values()))] = result
        else:
            for tag, pcoll in node.outputs.items():
                self.bags[pcoll] = result.map_partitions(_select, tag)

    def sinks(self) -> list:
        """The bags no transform reads: computing them runs the whole pipeline."""
        return [bag for pcoll, bag in self.bags.items() if pcoll not in self.read]


class DaskResult(beam_dask.DaskRunnerResult):
    """Beam's result, which also closes the client once the run has ended (and with it a cluster the client started)."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            self.client.close()


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with the translation above.

    `min_npartitions`: the partitions to spread the work over, at least (the
    caller's estimate from the input size); without `--dask_npartitions`, a
    run uses the larger of it and `PARTITIONS_PER_THREAD` per worker thread
    connected when the run starts.
    """

    def __init__(self, min_npartitions: int = 1):
        super().__init__()
        self._min_npartitions = min_npartitions

    def _default_npartitions(self, client) -> int:
        client.wait_for_workers(1)  # a cluster still starting (dask-jobqueue, Kubernetes) is sized by its first workers, not as none
        return max(self._min_npartitions, PARTITIONS_PER_THREAD * sum(client.nthreads().values()))

    def run_pipeline(self, pipeline, options):
        import dask
        import dask.distributed

        dask_options = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)  # noqa: SLF001 — Beam's own split of its options
        client = dask.distributed.Client(**dask_options)
        try:
            npartitions = bag_kwargs.get("npartitions") or self._default_npartitions(client)
            bag_kwargs[_RESHUFFLE_NPARTITIONS] = npartitions
            if "partition_size" not in bag_kwargs:  # Beam's Create takes one of the two
                bag_kwargs["npartitions"] = npartitions
            pipeline.replace_all(dask_overrides())
            visitor = _BagVisitor(bag_kwargs)
            with dask.config.set({"dataframe.shuffle.method": "tasks"}):  # GroupByKey's shuffle through the scheduler, not a worker's local disk
                pipeline.visit(visitor)
            # One graph, not optimised: dask's optimisation renames the tasks it fuses, and a task reached under two names runs twice.
            run = dask.delayed(_discard, pure=True)([bag.to_delayed(optimize_graph=False) for bag in visitor.sinks()])
            return DaskResult(client, [client.compute(run, optimize_graph=False)])
        except BaseException:
            client.close()
            raise


def npartitions_for(input_bytes: int) -> int:
    """At least one partition per `PARTITION_INPUT_BYTES` of input: a partition's documents are in one task's memory at once."""
    return max(1, math.ceil(input_bytes / PARTITION_INPUT_BYTES))


def scheduler_address(options) -> str | None:
    """The scheduler the options name (`--dask_client_address`, or the address in `--dask_scheduler_file`); None if Beam is to start a cluster."""
    dask = options.view_as(DaskOptions)
    if dask.address or not dask.scheduler_file:
        return dask.address
    try:
        with open(dask.scheduler_file, encoding="utf-8") as f:
            return json.load(f)["address"]
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"--dask_scheduler_file {dask.scheduler_file!r} names no scheduler address: {e}") from e


def _scheduler_url(options):
    """The named scheduler's address, parsed (a bare `host:port` is tcp://); None if Beam starts a cluster or it is in-process."""
    address = scheduler_address(options)
    if not address or address.startswith("inproc://"):
        return None
    return urlsplit(address if "://" in address else f"tcp://{address}")


def check_scheduler(options, timeout: float = SCHEDULER_TIMEOUT_SECONDS) -> None:
    """Fail in seconds, in one line naming the address, if the scheduler the options name cannot be reached.

    Dask's client alone retries for 30 s (`--dask_connection_timeout`),
    then raises a bare OSError from inside its connection code.
    """
    url = _scheduler_url(options)
    if url is None:
        return
    dask = options.view_as(DaskOptions)
    flag = "--dask_client_address" if dask.address else f"--dask_scheduler_file {dask.scheduler_file}: address"
    port = url.port or DEFAULT_SCHEDULER_PORT
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"{flag} {url.geturl()}: cannot reach the Dask scheduler at {url.hostname}:{port} ({e.strerror or type(e).__name__}); start it or check the address") from None


def shares_this_machine(options) -> bool:
    """Whether the run's workers are on this machine: a scheduler on a loopback address, or none named (Beam starts a local cluster)."""
    url = _scheduler_url(options)
    if url is None:
        return True
    host = url.hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except OSError:
        return False
