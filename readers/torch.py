"""PyTorch datasets over a version's shards: DDP-aware, resumable, reshuffled per epoch.

`TokenmillDataset` (iterable, TFRecord or Parquet) reads the order of an
epoch, a function of (seed, `set_epoch`'s epoch), and divides it between
ranks and DataLoader workers with `readers.partition` (every rank yields
`len(dataset)` examples an epoch). It saves and restores its position
through `state_dict`/`load_state_dict`, which `torchdata`'s
`StatefulDataLoader` calls in each worker, and `resume_from` continues a
saved epoch at another world size or worker count. `TokenmillMapDataset` gives random access to the
Parquet shards for any sampler. Examples are dicts of numpy arrays with the
manifest's lengths: int64 for ids, labels, positions and masks, float32 for
weights, so the default collate makes `torch.long` and `torch.float32`
tensors that Hugging Face models take as they are.

Reading needs neither TensorFlow nor protobuf (`readers.records`), so the
process may import TensorFlow too.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from readers.manifest import Corpus
from readers.grain import SplitSource
from readers.partition import (
    DYNAMIC_MASKING,
    EpochOrder,
    as_intervals,
    check_same_order,
    examples_per_rank,
    fingerprint,
    left_after,
    order_identity,
    rng_for,
    whole_epoch,
    worker_runs,
)
from readers.records import CorruptShard, ParquetFiles, decode_examples, iter_records

try:
    from torch.utils.data import Dataset, IterableDataset
except ImportError:  # readable without torch: the iterators work on their own
    Dataset = IterableDataset = object

DEFAULT_WINDOW = 4096


class SharedEpoch:
    """`set_epoch` for a dataset: the epoch is a 0-d int64 in shared memory when torch is there, so its DataLoader workers (persistent ones too) see it."""

    def __init__(self):
        try:
            import torch
        except ImportError:
            self._epoch = np.zeros((), np.int64)
        else:
            self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration (or the next examples read) is of, in this process and in its DataLoader workers."""
        self._epoch[()] = epoch


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size): the arguments when given, else torch.distributed's when initialised, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return (dist.get_rank() if rank is None else rank), (dist.get_world_size() if world_size is None else world_size)
    except ImportError:
        pass
    if rank is not None or world_size is not None:
        raise ValueError("give both rank and world_size, or neither (then torch.distributed's are used)")
    return 0, 1


def _loader_worker() -> tuple[int, int]:
    """(this DataLoader worker, number of workers); (0, 1) outside a worker."""
    try:
        from torch.utils.data import get_worker_info
    except ImportError:
        return 0, 1
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def trainer_dtypes(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Integer features as int64 (what embeddings, losses and position ids take); float features stay float32."""
    return {name: value.astype(np.int64) if value.dtype.kind == "i" else value for name, value in example.items()}


class DynamicMasking:
    """BERT masking at load time for corpora built with `--masking none`, with the manifest's vocab and parameters.

    Each example's masks come from a generator seeded by (seed, epoch, the
    example's index in the split): fresh every epoch, the same after a resume.
    """

    def __init__(self, corpus: Corpus):
        from transforms.vocab import Vocab

        params = corpus.manifest["objective"]["params"]
        if params.get("masking") != "none":
            raise ValueError(
                f"dynamic_masking needs a BERT corpus built with --masking none; this one is {corpus.manifest['objective']['name']} "
                f"with masking {params.get('masking')!r} (pass dynamic_masking=False)"
            )
        self.vocab = Vocab.from_manifest(corpus.manifest["tokenizer"])
        self.masked_lm_prob = float(params["masked_lm_prob"])
        self.max_predictions = int(params["max_predictions"])
        self.whole_word_mask = bool(params["whole_word_mask"])

    def __call__(self, example: dict[str, np.ndarray], seed: int, epoch: int, split_index: int) -> dict[str, np.ndarray]:
        from transforms.objectives.bert_masking import mask_tokens

        masked = mask_tokens(
            example["input_ids"][None],
            example["input_mask"][None],
            rng_for(seed, epoch, DYNAMIC_MASKING, split_index),
            self.vocab,
            self.masked_lm_prob,
            self.max_predictions,
            self.whole_word_mask,
        )
        return {**example, **{name: value[0] for name, value in masked.items()}}


def masking_for(corpus: Corpus, dynamic_masking: bool | None) -> DynamicMasking | None:
    """`DynamicMasking` if asked, or by default when the corpus was built with `--masking none`."""
    if dynamic_masking is None:
        dynamic_masking = corpus.manifest["objective"]["params"].get("masking") == "none"
    return DynamicMasking(corpus) if dynamic_masking else None


class TokenmillDataset(SharedEpoch, IterableDataset):
    """One split of a version for a data-parallel trainer; examples are dicts of numpy arrays.

    - rank/world_size: torch.distributed's when it is initialised (build the
      dataset after `init_process_group`), else 0 and 1, unless given.
    - The epoch's order (`readers.partition.EpochOrder`) is a function of
      (seed, `set_epoch`'s epoch) alone: with `shuffle`, the shards are
      permuted and the examples inside each window of `window` consecutive
      ones; without it, the stored order (already a global shuffle of the
      corpus). Each rank takes its windows of that order round-robin, and
      its DataLoader workers take the rank's windows round-robin; a worker
      holds one window decoded (window × the row's bytes in int32, e.g.
      4096 × 12 KiB = 48 MiB for clm rows of 1024).
    - drop_remainder: each rank yields N // world_size examples an epoch (the
      last N mod world_size are not read); False pads to ceil(N / world_size)
      by repeating the first examples of the order.
    - dynamic_masking: BERT masks drawn at load time (default: when the
      corpus was built with `--masking none`).
    - fmt: "tfrecord" or "parquet"; both hold the same examples in the same order.

    `state_dict`/`load_state_dict` (which `StatefulDataLoader` calls in each
    worker) resume exactly at the same world size and worker count;
    `resume_from(loader_state)` continues the epoch at any other.
    """

    def __init__(
        self,
        path: str,
        split: str = "train",
        *,
        shuffle: bool = False,
        seed: int = 0,
        window: int = DEFAULT_WINDOW,
        rank: int | None = None,
        world_size: int | None = None,
        drop_remainder: bool = True,
        dynamic_masking: bool | None = None,
        fmt: str = "tfrecord",
    ):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.corpus = Corpus(path)
        self.split, self.fmt = split, fmt
        self.shards = self.corpus.shards(split, fmt)
        self.counts = [s.examples for s in self.shards]
        self.shuffle, self.seed, self.window, self.drop_remainder = shuffle, seed, window, drop_remainder
        self.rank, self.world_size = _distributed(rank, world_size)
        self.masking = masking_for(self.corpus, dynamic_masking)
        self.order_identity = order_identity(
            fingerprint(self.corpus.shard_entries(split, fmt)), split, seed, shuffle, window, drop_remainder=drop_remainder
        )
        self._parquet = ParquetFiles([s.path for s in self.shards], self.corpus.schema) if fmt == "parquet" else None
        SharedEpoch.__init__(self)
        self._pending: tuple[int, np.ndarray, int] | None = None  # (epoch, what is left of it, yielded) of a restored position
        self._current: list | None = None  # [epoch, what is left, yielded] of the running iteration

    def __len__(self) -> int:
        """Examples this rank yields in a whole epoch (the same on every rank)."""
        return examples_per_rank(sum(self.counts), self.world_size, self.drop_remainder)

    def _position(self) -> tuple[int, np.ndarray, int]:
        epoch = self.epoch
        for position in (self._current, self._pending):
            if position is not None and position[0] == epoch:
                return tuple(position)
        return epoch, whole_epoch(sum(self.counts)), 0

    def state_dict(self) -> dict[str, Any]:
        """Where this worker is: its epoch, what was left of it when it began, how many of its part it has yielded, and what fixes the order."""
        worker, num_workers = _loader_worker()
        epoch, remaining, yielded = self._position()
        layout = {"rank": self.rank, "world_size": self.world_size, "worker": worker, "num_workers": num_workers}
        return {**self.order_identity, **layout, "epoch": epoch, "remaining": remaining.tolist(), "yielded": yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from this worker's saved position (same world size and workers): the next iteration yields what the saved one had not yet yielded."""
        check_same_order(state, self.order_identity)
        worker, num_workers = _loader_worker()
        now = {"rank": self.rank, "world_size": self.world_size, "worker": worker, "num_workers": num_workers}
        changed = {key: (state[key], value) for key, value in now.items() if state[key] != value}
        if changed:
            raise ValueError(
                f"the saved reader state is for another layout (saved, now): {changed}; to continue at another world size "
                "or worker count, call dataset.resume_from(loader_state) and build a new loader"
            )
        self.set_epoch(state["epoch"])
        self._pending = (state["epoch"], as_intervals(state["remaining"]), state["yielded"])

    def resume_from(self, loader_states) -> None:
        """Continue the saved epoch at this dataset's world size, with any number of workers: nothing of it repeated or skipped.

        `loader_states` is the `state_dict()` of one rank's `StatefulDataLoader`
        (every rank took the same number of steps, as in synchronous data
        parallelism) or a list of every rank's. Call it before building the
        loader; every rank of the new job calls it with the same states.
        """
        found = _reader_states(loader_states)
        if not found:
            raise ValueError("no TokenmillDataset state in what was given (pass the StatefulDataLoader's state_dict())")
        for state in found:
            check_same_order(state, self.order_identity)
        first = found[0]
        world_size, num_workers = first["world_size"], first["num_workers"]
        if any((s["epoch"], s["remaining"], s["world_size"], s["num_workers"]) != (first["epoch"], first["remaining"], world_size, num_workers) for s in found):
            raise ValueError("the states given are of different epochs or layouts")
        consumed = np.full((world_size, num_workers), -1, dtype=np.int64)
        for state in found:
            consumed[state["rank"], state["worker"]] = state["yielded"]
        ranks = np.flatnonzero((consumed >= 0).any(axis=1))
        if (consumed[ranks] < 0).any():
            raise ValueError(f"the states given lack some of the {num_workers} workers of a rank")
        if ranks.size == 1:
            consumed[:] = consumed[ranks[0]]
        elif ranks.size != world_size:
            raise ValueError(f"give one rank's loader state or all {world_size}; got ranks {ranks.tolist()}")
        left = left_after(first["remaining"], consumed, world_size, num_workers, self.window, self.drop_remainder)
        self.set_epoch(first["epoch"])
        self._pending = (first["epoch"], left, 0)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        worker, num_workers = _loader_worker()
        epoch, remaining, start = self._position()
        self._pending = None
        self._current = [epoch, remaining, start]
        runs = worker_runs(remaining, self.world_size, self.rank, num_workers, worker, self.window, self.drop_remainder)
        order = EpochOrder(self.counts, self.seed, epoch, self.shuffle, self.window)
        return self._examples(order, runs, start)

    def _examples(self, order: EpochOrder, runs: np.ndarray, start: int) -> Iterator[dict[str, np.ndarray]]:
        """The positions of `runs` past the first `start`, window piece by window piece; the pieces before are not read."""
        cursor = _TFRecordCursor(self.corpus.tfrecord_compression)
        for a, b in runs.tolist():
            if start >= b - a:
                start -= b - a
                continue
            a, start = a + start, 0
            for first, offsets in order.pieces(a, b):
                batch = self._read_piece(order, first, offsets, cursor)
                indices = order.split_indices(first + offsets)
                for row in range(len(offsets)):
                    example = {name: values[row] for name, values in batch.items()}
                    if self.masking is not None:
                        example = self.masking(example, self.seed, order.epoch, int(indices[row]))
                    self._current[2] += 1
                    yield trainer_dtypes(example)

    def _read_piece(self, order: EpochOrder, first: int, offsets: np.ndarray, cursor: "_TFRecordCursor") -> dict[str, np.ndarray]:
        """The examples at stream positions `first + offsets`, decoded, in the order of `offsets`."""
        lo, hi = int(offsets.min()), int(offsets.max()) + 1
        out = {f.name: np.empty((offsets.size, f.length), f.numpy_dtype) for f in self.corpus.schema.features}
        done = 0
        for r in order.ranges(first + lo, first + hi):
            rows = offsets - lo - done
            where = np.flatnonzero((rows >= 0) & (rows < r.size))
            done += r.size
            if not where.size:
                continue
            if self._parquet is not None:
                part = self._parquet.read(r.shard, r.start + rows[where])
            else:
                keep = np.zeros(r.size, dtype=bool)
                keep[rows[where]] = True
                records = cursor.take(self.shards[r.shard].path, r.start, keep)
                decoded = decode_examples(records, self.corpus.schema, self.shards[r.shard].path, (r.start + np.flatnonzero(keep)).tolist())
                part = {name: values[np.searchsorted(np.flatnonzero(keep), rows[where])] for name, values in decoded.items()}
            for name, values in part.items():
                out[name][where] = values
        return out


class _TFRecordCursor:
    """A TFRecord shard read forward: a later range of the same shard continues the open file (the records between are read and CRC-checked, not decoded)."""

    def __init__(self, compression: str | None):
        self.compression = "gzip" if compression else None
        self._path: str | None = None
        self._records: Iterator[bytes] | None = None
        self._next = 0

    def take(self, path: str, start: int, keep: np.ndarray) -> list[bytes]:
        """The records `start + i` of `path` for which `keep[i]`."""
        if path != self._path or start < self._next:
            self._path, self._records, self._next = path, iter_records(path, self.compression, start), start
        for _ in range(start - self._next):
            self._one()
        return [record for record, wanted in ((self._one(), wanted) for wanted in keep) if wanted]

    def _one(self) -> bytes:
        try:
            record = next(self._records)
        except StopIteration:
            raise CorruptShard(self._path, self._next, "the shard ends before this record (cut short?)") from None
        self._next += 1
        return record


def _reader_states(state) -> list[dict[str, Any]]:
    """Every `TokenmillDataset.state_dict()` inside a loader's state (or a list of them), wherever torchdata keeps them."""
    if isinstance(state, dict):
        if "remaining" in state and "yielded" in state and "corpus" in state:
            return [state]
        return [found for value in state.values() for found in _reader_states(value)]
    if isinstance(state, (list, tuple)):
        return [found for value in state for found in _reader_states(value)]
    return []


class TokenmillMapDataset(SharedEpoch, Dataset):
    """The Parquet shards of a split with random access: `ds[i]` is the i-th example of the split (shard order).

    Works with `DistributedSampler` and any sampler. The last
    `cached_row_groups` decoded row groups are kept (per worker process), so
    sequential and nearby accesses decode each row group once.
    dynamic_masking (default: when the corpus was built with `--masking
    none`) draws each example's BERT masks from (seed, `set_epoch`'s epoch,
    its index): the masks `TokenmillDataset` gives the same example.
    """

    def __init__(self, path: str, split: str = "train", cached_row_groups: int = 8, *, seed: int = 0, dynamic_masking: bool | None = None):
        self._source = SplitSource(path, split, "parquet", cached_row_groups)
        self.masking = masking_for(self._source.corpus, dynamic_masking)
        self.seed = seed
        SharedEpoch.__init__(self)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"example {index} of a split of {len(self)}")
        index %= len(self)
        example = self._source[index]
        if self.masking is not None:
            example = self.masking(example, self.seed, self.epoch, index)
        return trainer_dtypes(example)


def bert_mlm_labels(masked_lm_positions, masked_lm_ids, masked_lm_weights, length: int):
    """BERT's sparse predictions as Hugging Face `labels` [B, length]: the original id at each masked position, -100 elsewhere."""
    import torch

    labels = torch.full((masked_lm_positions.shape[0], length), -100, dtype=torch.long, device=masked_lm_positions.device)
    real = masked_lm_weights > 0
    rows = torch.arange(masked_lm_positions.shape[0], device=masked_lm_positions.device)[:, None].expand_as(masked_lm_positions)
    labels[rows[real], masked_lm_positions[real]] = masked_lm_ids[real]
    return labels
