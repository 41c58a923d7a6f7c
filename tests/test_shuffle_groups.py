"""At scale, consecutive buckets (and shards) share a shuffle key, so the elements crossing a shuffle stay large; the shards are the same bytes however they are grouped."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from corpus_tools import IN_MEMORY, assert_identical_shards
from pipelines.build import plan_build, run_plan
from pipelines.config import BuildConfig, members_per_group
from transforms.documents import DocBatch, route
from transforms.examples import KeyedExamples, MakeExamples, store_runs
from transforms.keys import bucket_of
from transforms.objectives import OBJECTIVES
from transforms.transit import HeldByKey, regroup, store, unpack_ahead
from transforms.write import WriteShard


def groups(count: int) -> int:
    return -(-count // members_per_group(count))


def test_every_bucket_is_its_own_key_up_to_256_then_about_the_square_root_of_the_count():
    assert {n: groups(n) for n in (1, 2, 256, 257, 3_726, 238_419, 2_384_185)} == {1: 1, 2: 2, 256: 256, 257: 129, 3_726: 249, 238_419: 489, 2_384_185: 1_545}
    for count in range(257, 300_000, 997):
        per_group = members_per_group(count)
        assert 128 <= groups(count) <= max(256, 2 * count**0.5), count
        assert per_group * groups(count) >= count > per_group * (groups(count) - 1)


def random_docs(rng: np.random.Generator, n: int) -> DocBatch:
    docs = [[rng.integers(1, 8000, size=rng.integers(1, 40)).tolist() for _ in range(rng.integers(1, 4))] for _ in range(n)]
    return DocBatch.from_token_lists(docs, key_hash=rng.integers(0, 2**63, size=n).astype(np.uint64))


def test_a_group_is_sorted_out_into_its_buckets_through_a_small_hold_losing_nothing(tmp_path):
    rng = np.random.default_rng(0)
    seed, num_buckets = 7, 9
    batches = [random_docs(rng, 40) for _ in range(12)]
    stored = [s for _, s in store(str(tmp_path), [(None, b) for b in batches])]
    assert [s.unpacked_nbytes for s in stored] == [b.nbytes for b in batches]
    held = HeldByKey(DocBatch.concat, limit=sum(b.nbytes for b in batches) // 5)
    by_bucket = list(regroup(stored, lambda batch: route(batch, seed, num_buckets), held, lambda drained: store(str(tmp_path), drained)))
    assert [bucket for bucket, _, _ in by_bucket] == list(range(num_buckets))
    assert all(len(spilled) >= 3 for _, spilled, _ in by_bucket), "the hold filled several times"
    everything = DocBatch.concat(batches)
    for bucket, spilled, last in by_bucket:
        docs = DocBatch.concat([s.unpack() for s in spilled] + [last])
        assert set(bucket_of(docs.key_hash, seed, num_buckets).tolist()) == {bucket}
        expected = everything.take(np.flatnonzero(bucket_of(everything.key_hash, seed, num_buckets) == bucket))
        got, want = docs.take(docs.canonical_order()), expected.take(expected.canonical_order())
        assert all(np.array_equal(a, b) for a, b in zip(got.to_arrays().values(), want.to_arrays().values()))


def run_examples_step(tmp_path, objective, batches, buckets_per_group, shards_per_group, **limits):
    """The examples step's output for all buckets, its runs merged per key: {(split, shard): keys and input ids in key order}."""
    num_buckets, num_shards, seed = 6, {"train": 5, "validation": 2}, 3
    step = MakeExamples(objective, seed, 0.2, num_buckets, buckets_per_group, num_shards, shards_per_group, str(tmp_path), **limits)
    stored = {}
    for batch in batches:
        for group, docs in route(batch, seed, num_buckets, buckets_per_group):
            stored.setdefault(group, []).extend(s for _, s in store(str(tmp_path), [(None, docs)]))
    step.start_bundle()
    out = [kv for group in sorted(stored) for kv in step.process((group, stored[group])) if isinstance(kv, tuple)]
    out += [w.value for w in step.finish_bundle()]
    per_key = {}
    for (split, group), run in out:
        per_key.setdefault((split, group), []).extend(s.unpack() for s in run)
    examples = {key: KeyedExamples.concat(parts).in_key_order() for key, parts in per_key.items()}
    by_shard = {}
    for (split, _), part in examples.items():
        shard = part.keys % np.uint64(num_shards[split])
        for s in np.unique(shard).tolist():
            by_shard[(split, s)] = part.take(np.flatnonzero(shard == s))
    return {key: (part.keys, part.features["input_ids"]) for key, part in by_shard.items()}


def test_the_examples_step_makes_the_same_examples_from_grouped_buckets_through_a_small_hold(tmp_path, vocab):
    rng = np.random.default_rng(1)
    batches = [random_docs(rng, 30) for _ in range(10)]
    objective = OBJECTIVES["mlm_nsp"].from_options({"seq_len": 64}, vocab)
    alone = run_examples_step(tmp_path / "a", objective, batches, 1, {"train": 1, "validation": 1})
    grouped = run_examples_step(tmp_path / "b", objective, batches, 4, {"train": 3, "validation": 2}, hold_bytes=20_000)
    assert alone.keys() == grouped.keys() and len(alone) == 7
    for key, (keys, ids) in alone.items():
        assert np.array_equal(keys, grouped[key][0]) and np.array_equal(ids, grouped[key][1]), key


def test_a_writer_of_a_shard_group_writes_each_shard_as_a_writer_of_that_shard_alone(tmp_path):
    from test_write_stream import SCHEMA, random_examples

    examples = random_examples(np.random.default_rng(2), 600)
    num_shards = 5
    shard = examples.keys % np.uint64(num_shards)

    def runs_of(part: KeyedExamples, pieces: int) -> list:
        cuts = np.linspace(0, part.keys.size, pieces + 1).astype(int)
        return [run for i in range(pieces) for _, run in store_runs(str(tmp_path), [(i, [part.slice(cuts[i], cuts[i + 1])])], 200_000)]

    (tmp_path / "alone" / "train").mkdir(parents=True)
    (tmp_path / "grouped" / "train").mkdir(parents=True)
    alone = WriteShard(SCHEMA, str(tmp_path / "alone"), ("tfrecord", "parquet"), "none", {"train": num_shards}, 0)
    written = [w for s in range(num_shards) for w in alone.process((("train", s), runs_of(examples.take(np.flatnonzero(shard == s)), 3)))]
    grouped = WriteShard(SCHEMA, str(tmp_path / "grouped"), ("tfrecord", "parquet"), "none", {"train": num_shards}, 0, {"train": 3}, hold_bytes=1_000_000)
    group_of = shard // np.uint64(3)
    written_grouped = [w for g in (0, 1) for w in grouped.process((("train", g), runs_of(examples.take(np.flatnonzero(group_of == g)), 4)))]
    assert [(w["path"], w["examples"], w["sha256"]) for w in written] == [(w["path"], w["examples"], w["sha256"]) for w in written_grouped]
    assert sum(w["examples"] for w in written) == 2 * 600


@pytest.mark.parametrize("objective,options", [("mlm_nsp", {"seq_len": 64}), ("span_corruption", {"inputs_length": 64})])
def test_a_build_with_grouped_shuffles_writes_the_same_shards(tmp_path, sample_corpus_path, tokenizer_path, objective, options):
    config = BuildConfig(
        inputs=(sample_corpus_path,), tokenizer=tokenizer_path, output=str(tmp_path / "alone"), objective=objective, objective_options=options,
        num_buckets=12, num_shards=4, num_validation_shards=2,
    )
    plan = plan_build(config)
    assert plan.buckets_per_group == 1 and plan.shards_per_group == {"train": 1, "validation": 1}
    _, alone = run_plan(plan, IN_MEMORY, show_progress=False)
    grouped_plan = dataclasses.replace(plan_build(dataclasses.replace(config, output=str(tmp_path / "grouped"))), buckets_per_group=5, shards_per_group={"train": 3, "validation": 2})
    _, grouped = run_plan(grouped_plan, IN_MEMORY, show_progress=False)
    assert assert_identical_shards(alone, grouped) == 12


class SlowPart:
    """A reference whose read waits, as an object store's does; records how many reads are under way at once."""

    under_way = 0
    most_under_way = 0
    lock = threading.Lock()

    def __init__(self, value: int, nbytes: int):
        self.value, self.unpacked_nbytes = value, nbytes

    def unpack(self) -> int:
        with SlowPart.lock:
            SlowPart.under_way += 1
            SlowPart.most_under_way = max(SlowPart.most_under_way, SlowPart.under_way)
        time.sleep(0.05)
        with SlowPart.lock:
            SlowPart.under_way -= 1
        return self.value


@pytest.mark.parametrize("nbytes,fewest,most", [(1_000, 2, 8), (3 << 20, 1, 1)])
def test_references_are_read_ahead_in_order_within_the_bounds(nbytes, fewest, most):
    """Small references overlap up to 8 at a time; two of 3 MiB would pass the 4 MiB bound, so those are read one by one."""
    SlowPart.most_under_way = 0
    parts = [SlowPart(i, nbytes) for i in range(40)]
    assert list(unpack_ahead(parts, ahead_bytes=4 << 20, ahead_reads=8)) == list(range(40))
    assert fewest <= SlowPart.most_under_way <= most


def test_a_merge_reads_the_next_slice_of_every_run_while_it_works():
    """Each run's next slice is read while the merge uses the current ones: the reads of different runs overlap."""
    from transforms.examples import merge_sorted

    SlowPart.most_under_way = 0
    keys = np.random.default_rng(3).permutation(400).astype(np.uint64)
    examples = KeyedExamples(keys, {"x": keys.astype(np.int32)[:, None]})
    runs = [[SlowPart(piece, 1_000) for piece in examples.slice(i * 100, i * 100 + 100).in_key_order().slices(20)] for i in range(4)]
    merged = KeyedExamples.concat(list(merge_sorted(runs, 1_000)))
    assert np.array_equal(merged.keys, np.arange(400, dtype=np.uint64))
    assert 2 <= SlowPart.most_under_way <= 4


def test_the_builds_metrics_count_the_transit_reads_made_in_read_ahead_threads(tmp_path, sample_corpus_path, tokenizer_path):
    """Beam keeps only metric updates made in the thread running a step; the reads run in a pool, and are counted as they are taken."""
    from apache_beam.metrics.metric import MetricsFilter

    from pipelines.build import BuildCorpus
    from runners.local import run

    plan = plan_build(BuildConfig(inputs=(sample_corpus_path,), tokenizer=tokenizer_path, output=str(tmp_path), objective_options={"seq_len": 64}, num_buckets=8, num_shards=3))
    result = run(lambda p, progress_dir: p | BuildCorpus(plan, progress_dir), IN_MEMORY, plan.input_bytes, show_progress=False)
    reads = {d.key.step.split("/")[1]: d.committed for d in result.metrics().query(MetricsFilter().with_name("transit_read_bytes"))["distributions"]}
    assert reads["Objective"].count >= 8 and reads["WriteShards"].count >= 3, reads
    assert all(r.sum >= r.count * 100 for r in reads.values()), reads
