"""On a Dask cluster (a real scheduler and two worker processes on 127.0.0.1), a build makes the same version as the local runner."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import threading
import time
import uuid

import psutil
import pytest

from corpus_tools import IN_MEMORY, assert_identical_shards, build, run_cli, temporaries
from runners.remote import check_remote_runner
from test_bad_input import MAX_BYTES, damaged_tree  # noqa: F401 — the bad-input corpus, as a fixture
from transforms.errors import ConfigError

SETTINGS = {
    "clm": ["--seq-len", "64", "--compression", "gzip"],
    "mlm_nsp": ["--seq-len", "64", "--max-predictions", "10"],
    "span_corruption": ["--inputs-length", "64", "--targets-length", "16"],
    "ul2": ["--inputs-length", "64", "--targets-length", "64"],
}
COMMON = ["--num-shards", "2", "--validation-fraction", "0.1", "--seed", "7"]
RUNTIME_FIELDS = ("started_at", "finished_at", "version")  # the version's name is a time unless --version names it


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two single-threaded worker processes (each under a nanny that restarts it), stopped afterwards."""
    from distributed import Client, LocalCluster

    from runners.local import lean_memory

    with lean_memory(), LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as local, Client(local) as client:
        yield client
        pids = set(client.run(os.getpid).values())
    for pid in pids:
        with pytest.raises(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=10)


def on(client) -> list[str]:
    return ["--runner", "DaskRunner", f"--dask_client_address={client.scheduler.address}"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, sample_docs):
    """Three JSONL files of real documents: several read ranges, spread over the workers."""
    root = tmp_path_factory.mktemp("dask-inputs")
    for i in range(3):
        with open(root / f"part-{i}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(d) + "\n" for d in sample_docs[i * 100 : (i + 1) * 100])
    return [a for i in range(3) for a in ("--input", str(root / f"part-{i}.jsonl"))]


@pytest.fixture(scope="module")
def local_builds(tmp_path_factory, inputs, tokenizer_path):
    """Each objective built by the local runner: what the Dask builds must equal."""
    return {
        objective: build(tmp_path_factory.mktemp(f"local-{objective}"), *inputs, "--tokenizer", tokenizer_path, "--objective", objective, *SETTINGS[objective], *COMMON, runner=IN_MEMORY)
        for objective in SETTINGS
    }


def without_runtime(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in RUNTIME_FIELDS}


def assert_same_version(local: tuple[dict, str], dask: tuple[dict, str]) -> None:
    assert without_runtime(dask[0]) == without_runtime(local[0])
    assert assert_identical_shards(local[1], dask[1]) > 0
    for path in glob.glob(os.path.join(local[1], "errors", "*")):
        with open(path, "rb") as a, open(os.path.join(dask[1], "errors", os.path.basename(path)), "rb") as b:
            assert a.read() == b.read(), path


def test_the_runner_keeps_every_output_bundle_end_side_input_and_branch(cluster, tmp_path):
    """What Beam's own DaskRunner loses or lacks: tagged outputs kept apart, finish_bundle's outputs, side inputs, a branch off the last step, Impulse; Reshuffle spreads."""
    import apache_beam as beam
    from apache_beam.transforms.window import GlobalWindows

    from runners.local import run

    class SplitAndCount(beam.DoFn):
        def start_bundle(self):
            self.seen = 0

        def process(self, n, directory=str(tmp_path)):
            self.seen += 1
            with open(os.path.join(directory, f"processed-{n}-{uuid.uuid4().hex}"), "w"):
                pass
            yield n if n % 2 else beam.pvalue.TaggedOutput("even", n)

        def finish_bundle(self):
            yield beam.pvalue.TaggedOutput("bundles", GlobalWindows.windowed_value(self.seen))

    def write(name, value, directory=str(tmp_path)):
        with open(os.path.join(directory, name), "w") as f:
            json.dump(value, f)

    def construct(p, _):
        parts = (
            p
            | beam.Create(range(20))
            | beam.Reshuffle()
            | beam.ParDo(SplitAndCount()).with_outputs("even", "bundles", main="odd")
        )
        parts.even | "Evens" >> beam.combiners.ToList() | "WriteEvens" >> beam.Map(lambda evens: write("even", sorted(evens)))
        root = beam.pvalue.AsSingleton(p | beam.Impulse() | "Root" >> beam.Map(lambda empty: f"impulse {empty!r}"))
        (
            p
            | "Once" >> beam.Create([None])
            | "WriteRest" >> beam.Map(
                lambda _, odd, bundles, root: write("rest", [sorted(odd), bundles, root]), beam.pvalue.AsList(parts.odd), beam.pvalue.AsList(parts.bundles), root
            )
        )

    run(construct, [*on(cluster), "--dask_partition_size=100"], show_progress=False)  # Create makes one partition of 20
    with open(tmp_path / "even") as f:
        assert json.load(f) == list(range(0, 20, 2))
    with open(tmp_path / "rest") as f:
        odd, bundles, root = json.load(f)
    assert root == "impulse b''"
    assert odd == list(range(1, 20, 2))
    assert sum(bundles) == 20 and len(bundles) > 1, "each element counted once, in bundles spread by Reshuffle"
    assert len(glob.glob(str(tmp_path / "processed-*"))) == 20, "each element processed once: the side inputs reuse the main graph's tasks"


@pytest.mark.parametrize("objective", sorted(SETTINGS))
def test_a_dask_build_equals_the_local_build(objective, cluster, inputs, tokenizer_path, local_builds, tmp_path):
    dask = build(tmp_path, *inputs, "--tokenizer", tokenizer_path, "--objective", objective, *SETTINGS[objective], *COMMON, runner=on(cluster))
    assert_same_version(local_builds[objective], dask)
    assert temporaries(tmp_path) == []


def test_a_worker_killed_mid_build_changes_nothing(cluster, inputs, tokenizer_path, local_builds, tmp_path):
    """The scheduler reruns the killed worker's tasks (lost results included); Publish removes what it left half-written."""
    before = cluster.run(os.getpid)
    version_dir = tmp_path / "versions" / "v"
    outcome = {}
    args = (tmp_path, *inputs, "--tokenizer", tokenizer_path, "--objective", "clm", *SETTINGS["clm"], *COMMON, "--version", "v")
    runner = threading.Thread(target=lambda: outcome.update(result=build(*args, runner=on(cluster))))
    runner.start()
    deadline = time.monotonic() + 120
    while not temporaries(version_dir) and time.monotonic() < deadline:
        time.sleep(0.005)  # the first documents are tokenized: the build is under way
    victim = sorted(before.values())[0]
    os.kill(victim, signal.SIGKILL)
    assert not (version_dir / "manifest.json").exists(), "killed mid-build"
    runner.join(timeout=300)
    assert_same_version(local_builds["clm"], outcome["result"])
    assert temporaries(tmp_path) == []
    cluster.wait_for_workers(2, timeout=60)
    after = cluster.run(os.getpid)
    assert victim not in after.values() and len(after) == 2, "the nanny replaced the killed worker"


def test_bad_input_on_dask_gives_the_same_dead_letters_and_counters(cluster, damaged_tree, tmp_path):  # noqa: F811
    root = damaged_tree[0]
    args = [
        *[a for name in sorted(os.listdir(root)) for a in ("--input", str(root / name))],
        "--max-document-bytes", str(MAX_BYTES), "--seq-len", "64", "--num-shards", "2", "--validation-fraction", "0", "--version", "v",
    ]
    local = build(tmp_path / "local", *args, runner=IN_MEMORY)
    dask = build(tmp_path / "dask", *args, runner=on(cluster))
    assert dask[0]["counters"]["documents_dropped_total"] > 0
    assert sorted(os.listdir(os.path.join(dask[1], "errors"))) == sorted(os.listdir(os.path.join(local[1], "errors")))
    assert_same_version(local, dask)


def test_rebuild_on_dask_publishes_once_then_skips(cluster, inputs, tokenizer_path, local_builds, tmp_path):
    args = ["rebuild", "--output", tmp_path, *inputs, "--tokenizer", tokenizer_path, *SETTINGS["clm"], *COMMON, *on(cluster)]
    code, printed = run_cli(*args)
    assert code == 0 and "Rebuilding: nothing is published yet" in printed, printed
    assert "300 docs tokenized" in printed, "progress from the workers of a cluster on this machine"
    version_dir = tmp_path / "versions" / (tmp_path / "LATEST").read_text().strip()
    with open(version_dir / "manifest.json") as f:
        assert_same_version(local_builds["clm"], (json.load(f), str(version_dir)))
    assert temporaries(tmp_path) == []
    published = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(tmp_path / "**"), recursive=True)}

    code, printed = run_cli(*args)
    assert code == 0 and "Up to date" in printed and "no pipeline ran" in printed, printed
    assert {p: os.stat(p).st_mtime_ns for p in glob.glob(str(tmp_path / "**"), recursive=True)} == published


REMOTE = ["--runner", "DaskRunner", "--dask_client_address", "tcp://10.0.0.5:8786"]


def test_local_paths_need_workers_on_this_machine_or_a_shared_filesystem():
    local_paths = (("data/*.jsonl",), "corpus")
    with pytest.raises(ConfigError, match="cannot reach this machine's disk.*--shared-filesystem"):
        check_remote_runner(*local_paths, REMOTE)
    check_remote_runner(*local_paths, REMOTE, shared_filesystem=True)
    check_remote_runner(*local_paths, ["--runner", "DaskRunner", "--dask_client_address", "tcp://127.0.0.1:8786"])
    check_remote_runner(*local_paths, ["--runner", "DaskRunner", "--dask_client_address=localhost:8786"])
    check_remote_runner(*local_paths, ["--runner", "DaskRunner"])  # no scheduler named: Beam starts a cluster on this machine
    check_remote_runner(("gs://bucket/raw/*.jsonl",), "gs://bucket/corpus", REMOTE)


def test_the_cli_takes_dask_flags_and_the_shared_filesystem_switch(capsys, tmp_path):
    code, _ = run_cli("build", "--output", tmp_path, *REMOTE)
    assert code == 2 and "--shared-filesystem" in capsys.readouterr().err
    code, _ = run_cli("build", "--output", tmp_path, *REMOTE, "--dask_npartition=4")
    assert code == 2 and "did you mean --dask_npartitions?" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as not_dask:  # hangs up on every connection: reachable, but no scheduler
        address = f"tcp://127.0.0.1:{not_dask.getsockname()[1]}"
        hang_up = threading.Thread(target=_hang_up_on_everyone, args=(not_dask,), daemon=True)
        hang_up.start()
        with pytest.raises(OSError, match=f"remote={address}"):  # the flags reached Dask's client, which connected and was hung up on
            run_cli("build", "--output", tmp_path, "--runner", "DaskRunner", "--dask_client_address", address, "--dask_connection_timeout", "1", "--dask_npartitions", "3")


def _hang_up_on_everyone(server: socket.socket) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except OSError:  # the server was closed
            return
        connection.close()


def test_an_unreachable_scheduler_fails_in_seconds_in_one_line(capsys, tmp_path):
    """Dask's client alone retries for 30 s, then raises a bare OSError."""
    from gcs_tools import free_port

    closed = free_port()
    started = time.monotonic()
    code, _ = run_cli("build", "--output", tmp_path, "--runner", "DaskRunner", "--dask_client_address", f"tcp://127.0.0.1:{closed}")
    assert code == 2 and time.monotonic() - started < 10
    assert capsys.readouterr().err == (
        f"tokenmill: error: --dask_client_address tcp://127.0.0.1:{closed}: cannot reach the Dask scheduler at 127.0.0.1:{closed} (Connection refused); start it or check the address\n"
    )
