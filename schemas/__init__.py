"""One declaration of each objective's features, and everything derived from it.

A `Schema` is the single source of truth for an objective's output: the Arrow
schema of its Parquet shards, the `tf.io.FixedLenFeature` parse spec of its
TFRecord shards and the feature spec recorded in `manifest.json` all come from
it. Importing this module needs neither Beam nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

INT = "int"
FLOAT = "float"


@dataclasses.dataclass(frozen=True)
class Feature:
    """A fixed-length feature: `length` values of `dtype` per example.

    `counts_tokens` marks features whose non-padding values are tokens; the
    manifest's token counts sum them.
    """

    name: str
    length: int
    dtype: str = INT
    counts_tokens: bool = False

    def __post_init__(self):
        if self.dtype not in (INT, FLOAT):
            raise ValueError(f"feature {self.name!r}: dtype must be {INT!r} or {FLOAT!r}")
        if self.length < 1:
            raise ValueError(f"feature {self.name!r}: length must be >= 1, got {self.length}")

    @property
    def numpy_dtype(self) -> np.dtype:
        """In-memory dtype: int32 token ids (as in Parquet), float32 weights."""
        return np.dtype(np.int32 if self.dtype == INT else np.float32)


@dataclasses.dataclass(frozen=True)
class Schema:
    """The ordered features of one objective's examples."""

    objective: str
    features: tuple[Feature, ...]

    def __post_init__(self):
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in {names}")

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def arrow_schema(self):
        """Parquet columns: `fixed_size_list<int32>` or `fixed_size_list<float>`."""
        import pyarrow as pa

        fields = []
        for f in self.features:
            value_type = pa.int32() if f.dtype == INT else pa.float32()
            fields.append(pa.field(f.name, pa.list_(pa.field("item", value_type, nullable=False), f.length), nullable=False))
        return pa.schema(fields, metadata={b"tokenmill.objective": self.objective.encode()})

    def tf_parse_spec(self) -> dict[str, Any]:
        """`{name: tf.io.FixedLenFeature([length], tf.int64 | tf.float32)}` for `tf.io.parse_example`."""
        import tensorflow as tf

        return {
            f.name: tf.io.FixedLenFeature([f.length], tf.int64 if f.dtype == INT else tf.float32)
            for f in self.features
        }

    def manifest_spec(self) -> list[dict[str, Any]]:
        """The feature spec for both formats, as recorded in `manifest.json`."""
        return [
            {
                "name": f.name,
                "length": f.length,
                "tfrecord": {"dtype": "int64" if f.dtype == INT else "float32", "list": "int64_list" if f.dtype == INT else "float_list"},
                "parquet": {"dtype": f"fixed_size_list<{'int32' if f.dtype == INT else 'float'}>[{f.length}]"},
                "counts_tokens": f.counts_tokens,
            }
            for f in self.features
        ]

    @classmethod
    def from_manifest(cls, objective: str, spec: Sequence[Mapping[str, Any]]) -> "Schema":
        """Rebuild a schema from a manifest's feature spec (what readers use)."""
        return cls(
            objective,
            tuple(
                Feature(
                    s["name"],
                    int(s["length"]),
                    INT if s["tfrecord"]["dtype"] == "int64" else FLOAT,
                    bool(s.get("counts_tokens", False)),
                )
                for s in spec
            ),
        )

    def check(self, features: Mapping[str, np.ndarray]) -> int:
        """Validate a batch of examples against the schema; return its size."""
        if set(features) != set(self.names):
            raise ValueError(f"{self.objective}: features {sorted(features)} != schema {sorted(self.names)}")
        sizes = {a.shape[0] for a in features.values()}
        if len(sizes) != 1:
            raise ValueError(f"{self.objective}: features disagree on batch size: {sizes}")
        for f in self.features:
            a = features[f.name]
            if a.ndim != 2 or a.shape[1] != f.length or a.dtype != f.numpy_dtype:
                raise ValueError(
                    f"{self.objective}.{f.name}: expected [N, {f.length}] {f.numpy_dtype}, got {list(a.shape)} {a.dtype}"
                )
        return sizes.pop()
