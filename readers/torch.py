"""PyTorch datasets over a version's shards: DDP-aware, resumable, reshuffled per epoch.

`TokenmillDataset` (iterable, TFRecord or Parquet) splits a split between
ranks and DataLoader workers with `readers.partition` (every rank yields
`len(dataset)` examples an epoch), orders it by (seed, epoch) after
`set_epoch`, and saves and restores its position through
`state_dict`/`load_state_dict`, which `torchdata`'s `StatefulDataLoader`
calls in each worker. `TokenmillMapDataset` gives random access to the
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
from readers.partition import DYNAMIC_MASKING, WINDOW_ORDER, Range, examples_per_rank, plan, rng_for
from readers.grain import SplitSource
from readers.records import read_parquet, read_tfrecord

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
    - drop_remainder: each rank yields N // world_size examples an epoch (the
      last N mod world_size of the epoch's order are not read); False pads to
      ceil(N / world_size) by repeating the first examples.
    - shuffle: each epoch (`set_epoch`) permutes the shards with (seed, epoch)
      and the examples inside consecutive windows of `window` examples per
      worker, which holds `window` decoded examples in memory (window ×
      the row's bytes in int32, e.g. 4096 × 12 KiB = 48 MiB for clm rows
      of 1024). Without it, epoch 0 reads the shards in stored order (they
      are already a global shuffle of the corpus).
    - dynamic_masking: BERT masks drawn at load time (default: when the
      corpus was built with `--masking none`).
    - fmt: "tfrecord" or "parquet"; both hold the same examples in the same order.
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
        self.files = [s.path for s in self.shards]
        self.shuffle, self.seed, self.window, self.drop_remainder = shuffle, seed, window, drop_remainder
        self.rank, self.world_size = _distributed(rank, world_size)
        self.masking = masking_for(self.corpus, dynamic_masking)
        SharedEpoch.__init__(self)
        self._worker = (0, 1)
        self._yielded = 0
        self._resume_at: tuple[int, int] | None = None  # (epoch, examples yielded) of a restored position

    def __len__(self) -> int:
        """Examples this rank yields in an epoch (the same on every rank)."""
        return examples_per_rank(sum(s.examples for s in self.shards), self.world_size, self.drop_remainder)

    def state_dict(self) -> dict[str, Any]:
        """Where this worker is: its epoch and how many examples of it it has yielded, with what fixes the order."""
        worker, num_workers = self._worker
        return {
            "epoch": self.epoch,
            "yielded": self._yielded,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "window": self.window,
            "rank": self.rank,
            "world_size": self.world_size,
            "worker": worker,
            "num_workers": num_workers,
            "drop_remainder": self.drop_remainder,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position: the next iteration yields what the saved one had not yet yielded."""
        worker, num_workers = _loader_worker()
        now = {"seed": self.seed, "shuffle": self.shuffle, "window": self.window, "rank": self.rank, "world_size": self.world_size}
        now.update(worker=worker, num_workers=num_workers, drop_remainder=self.drop_remainder)
        changed = {key: (state[key], value) for key, value in now.items() if state[key] != value}
        if changed:
            raise ValueError(f"the saved reader state is for another setup (saved, now): {changed}; resume with the same settings")
        self.set_epoch(state["epoch"])
        self._resume_at = (state["epoch"], state["yielded"])

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        self._worker = worker, num_workers = _loader_worker()
        epoch = self.epoch  # read once: the whole iteration is of one epoch
        ranges = plan(
            [s.examples for s in self.shards],
            self.world_size,
            self.rank,
            num_workers,
            worker,
            self.seed,
            epoch,
            self.shuffle,
            self.drop_remainder,
        )
        start = self._resume_at[1] if self._resume_at and self._resume_at[0] == epoch else 0
        self._resume_at = None
        self._yielded = start
        return self._examples(ranges, start, worker, epoch)

    def _examples(self, ranges: list[Range], start: int, worker: int, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        total = sum(r.size for r in ranges)
        if not self.shuffle:
            for batch, indices in self._read(ranges, start, total):
                yield from self._rows(batch, indices, range(len(indices)), epoch)
            return
        yield from self._shuffled(ranges, start, total, worker, epoch)

    def _window_order(self, worker: int, epoch: int, block_start: int, total: int) -> np.ndarray:
        """The order the window starting at `block_start` yields its positions in: a permutation drawn from (seed, epoch, rank, worker, window)."""
        size = min(block_start + self.window, total) - block_start
        return rng_for(self.seed, epoch, WINDOW_ORDER, self.rank, worker, block_start // self.window).permutation(size)

    def _shuffled(self, ranges: list[Range], start: int, total: int, worker: int, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """Positions [start, total) window by window, each window in its own order, read as one stream.

        Only the first window may be partly yielded already (a resume): its
        rows yielded before are not decoded. Later windows are cut from the
        same stream, so no shard is opened or walked again for each window.
        """
        first = start - start % self.window
        first_wanted = self._window_order(worker, epoch, first, total)[start - first :]
        keep = np.ones(total - first, dtype=bool)
        keep[: min(self.window, total - first)] = False
        keep[first_wanted] = True
        stream = self._read(ranges, first, total, keep)
        held: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        count = 0
        for block_start in range(first, total, self.window):
            wanted = first_wanted if block_start == first else self._window_order(worker, epoch, block_start, total)
            while count < wanted.size:
                batch, indices = next(stream)
                held.append((batch, indices))
                count += indices.size
            batch = {name: np.concatenate([b[name] for b, _ in held]) for name in self.corpus.schema.names}
            indices = np.concatenate([i for _, i in held])
            n = wanted.size
            held = [({name: a[n:] for name, a in batch.items()}, indices[n:])] if indices.size > n else []
            count -= n
            yield from self._rows({name: a[:n] for name, a in batch.items()}, indices[:n], np.searchsorted(np.sort(wanted), wanted), epoch)

    def _rows(self, batch: dict[str, np.ndarray], indices: np.ndarray, rows, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        for row in rows:
            example = {name: values[row] for name, values in batch.items()}
            if self.masking is not None:
                example = self.masking(example, self.seed, epoch, int(indices[row]))
            self._yielded += 1
            yield trainer_dtypes(example)

    def _read(self, ranges: list[Range], start: int, stop: int, keep: np.ndarray | None = None) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """Decoded batches of this worker's positions [start, stop) and the split index of each row.

        With `keep` (a bool per position), only those rows are decoded.
        """
        compression = "gzip" if self.corpus.tfrecord_compression else None
        offset = 0
        for r in ranges:
            lo, hi = max(start - offset, 0), min(stop - offset, r.size)
            if lo < hi:
                part = None if keep is None else keep[offset + lo - start : offset + hi - start]
                if part is not None and not part.any():
                    offset += r.size
                    continue
                path = self.shards[r.shard].path
                if self.fmt == "tfrecord":
                    batches = read_tfrecord(path, self.corpus.schema, compression, r.start + lo, r.start + hi, keep=part)
                    kept = np.arange(r.first_index + lo, r.first_index + hi)
                    kept = kept if part is None else kept[part]
                    done = 0
                    for batch in batches:
                        n = len(next(iter(batch.values())))
                        yield batch, kept[done : done + n]
                        done += n
                else:
                    done = lo
                    for batch in read_parquet(path, self.corpus.schema, r.start + lo, r.start + hi):
                        n = len(next(iter(batch.values())))
                        indices = np.arange(r.first_index + done, r.first_index + done + n)
                        if part is not None:
                            mask = part[done - lo : done - lo + n]
                            batch, indices = {k: v[mask] for k, v in batch.items()}, indices[mask]
                        yield batch, indices
                        done += n
            offset += r.size
            if offset >= stop:
                return


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
