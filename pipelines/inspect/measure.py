"""The numbers of `tokenmill report`, computed from the examples alone: numpy in, a dict out, no drawing.

`measure_split` measures one split's examples; `expected` gives the values the
manifest's configuration promises, so the report can set each measured
figure beside the one it should be near. The table, the HTML page and the
tests all read the same dicts.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from schemas import Schema
from transforms.objectives.bert import MASK_SHARE, RANDOM_SHARE, num_to_predict
from transforms.objectives.t5 import noise_counts

BERT = ("mlm", "mlm_nsp", "mlm_sop")
TOP_TOKENS = 20


def measure_split(manifest: Mapping[str, Any], features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Scalars (`examples`, `tokens`, `padding_fraction`, ...) and distributions (arrays) of one split's examples."""
    objective = manifest["objective"]["name"]
    schema = Schema.from_manifest(objective, manifest["features"])
    ids = manifest["tokenizer"]["special_ids"]
    counted = [f for f in schema.features if f.counts_tokens]
    num = next(iter(features.values())).shape[0] if features else 0
    real = {f.name: features[f.name] != ids["pad"] for f in counted}
    tokens = int(sum(np.count_nonzero(r) for r in real.values()))
    positions = num * sum(f.length for f in counted)
    out: dict[str, Any] = {
        "examples": int(num),
        "tokens": tokens,
        "padding_fraction": 1 - tokens / positions if positions else 0.0,
        "real_tokens_per_example": sum(np.count_nonzero(r, axis=1) for r in real.values()) if num else np.zeros(0, np.int64),
        "top_tokens": _top_tokens(features, real),
    }
    if not num:
        return out
    if objective == "clm":
        out.update(_clm(features))
    elif objective in BERT:
        out.update(_bert(manifest, features))
    elif objective in ("span_corruption", "ul2"):
        out.update(_denoising(manifest, features))
    elif objective == "prefix_lm":
        out.update(_prefix_lm(manifest, features))
    return out


def _top_tokens(features: Mapping[str, np.ndarray], real: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The most frequent ids over the token features (padding left out), and their counts."""
    values = np.concatenate([features[name][mask] for name, mask in real.items()]) if real else np.zeros(0, np.int64)
    counts = np.bincount(values.astype(np.int64)) if values.size else np.zeros(0, np.int64)
    top = np.argsort(-counts, kind="stable")[:TOP_TOKENS]
    top = top[counts[top] > 0]
    return top, counts[top]


def _clm(features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    segments = features["segment_ids"].astype(np.int64)
    row_length = segments.shape[1]
    key = (np.arange(segments.shape[0])[:, None] * (row_length + 1) + segments)[segments > 0]
    _, piece_lengths = np.unique(key, return_counts=True)
    documents = segments.max(axis=1)
    return {"documents_per_row": documents, "piece_lengths": piece_lengths, "mean_documents_per_row": float(documents.mean())}


def _bert(manifest: Mapping[str, Any], features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    params = manifest["objective"]["params"]
    special = manifest["tokenizer"]["special_ids"]
    mask = features["input_mask"] > 0
    real = np.count_nonzero(mask, axis=1)
    segment = features["segment_ids"]
    out: dict[str, Any] = {}
    if "next_sentence_labels" in features:
        out["length_a"] = np.count_nonzero(mask & (segment == 0), axis=1) - 2  # less [CLS] and its [SEP]
        out["length_b"] = np.count_nonzero(mask & (segment == 1), axis=1) - 1
        out["label_1_share"] = float(features["next_sentence_labels"][:, 0].mean())
    else:
        out["length_a"] = real - 2
    if "masked_lm_positions" in features:
        used = features["masked_lm_weights"] > 0
        shown = np.take_along_axis(features["input_ids"], features["masked_lm_positions"], axis=1)[used]
        original = features["masked_lm_ids"][used]
        predictions = np.count_nonzero(used, axis=1)
        total = max(int(used.sum()), 1)
        is_mask = shown == special["[MASK]"]
        is_kept = ~is_mask & (shown == original)
        out.update(
            {
                "predictions_per_example": predictions,
                "expected_predictions_per_example": num_to_predict(real, params["masked_lm_prob"], params["max_predictions"]),
                "masked_fraction": float(predictions.sum() / real.sum()),
                "mask_share": float(is_mask.sum() / total),
                "random_share": float((~is_mask & ~is_kept).sum() / total),
                "kept_share": float(is_kept.sum() / total),
            }
        )
    return out


def _body_lengths(rows: np.ndarray, pad: int, lead: int) -> np.ndarray:
    """Tokens of each row less padding, the final eos and `lead` tokens in front."""
    return np.count_nonzero(rows != pad, axis=1) - 1 - lead


def _span_lengths(targets: np.ndarray, sentinels: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From span-corruption targets: each span's length, the row it is in, and sentinels per row.

    A span runs from its sentinel to the next sentinel or to the row's eos.
    """
    width = targets.shape[1]
    is_sentinel = np.isin(targets, sentinels)
    eos_column = np.count_nonzero(targets != pad, axis=1) - 1
    boundary = is_sentinel | (np.arange(width) == eos_column[:, None])
    flat = np.flatnonzero(boundary.reshape(-1))
    starts = is_sentinel.reshape(-1)[flat[:-1]]
    lengths = (np.diff(flat) - 1)[starts]
    return lengths, flat[:-1][starts] // width, np.count_nonzero(is_sentinel, axis=1)


def _noise(lengths_in: np.ndarray, noise: np.ndarray, sentinels_in: np.ndarray) -> dict[str, Any]:
    raw = lengths_in - sentinels_in + noise
    return {"noise_tokens": int(noise.sum()), "raw_tokens": int(raw.sum()), "noise_density": float(noise.sum() / max(raw.sum(), 1))}


def _denoising(manifest: Mapping[str, Any], features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Noise density, span lengths and fill; for ul2 also per denoiser and the mix."""
    params = manifest["objective"]["params"]
    special = manifest["tokenizer"]["special_ids"]
    pad, sentinels = special["pad"], np.asarray(special["extra_ids"])
    inputs, targets = features["inputs"], features["targets"]
    lead = int(bool(params.get("mode_tokens", False)))
    denoiser = features["denoiser"][:, 0] if "denoiser" in features else np.zeros(inputs.shape[0], np.int64)
    prefix_kinds = [i for i, d in enumerate(params.get("denoisers", [])) if d["prefix_lm"]]
    is_prefix = np.isin(denoiser, prefix_kinds)
    lengths_in = _body_lengths(inputs, pad, lead)
    lengths_out = _body_lengths(targets, pad, 0)
    span_lengths, span_row, sentinels_out = _span_lengths(targets, sentinels, pad)
    keep_span = ~is_prefix[span_row]
    span_lengths, span_row = span_lengths[keep_span], span_row[keep_span]
    sentinels_in = np.where(is_prefix, 0, np.count_nonzero(np.isin(inputs, sentinels), axis=1))
    noise = np.where(is_prefix, lengths_out, lengths_out - sentinels_out)
    out = {
        **_noise(lengths_in, noise, sentinels_in),
        "span_lengths": span_lengths,
        "mean_span_length": float(span_lengths.mean()) if span_lengths.size else 0.0,
        "inputs_fill": np.count_nonzero(inputs != pad, axis=1) / inputs.shape[1],
        "targets_fill": np.count_nonzero(targets != pad, axis=1) / targets.shape[1],
    }
    if "denoiser" in features:
        per = []
        for index in range(len(params["denoisers"])):
            rows = denoiser == index
            spans = span_lengths[rows[span_row]]
            per.append(
                {
                    "examples": int(rows.sum()),
                    "share": float(rows.mean()),
                    **_noise(lengths_in[rows], noise[rows], sentinels_in[rows]),
                    "span_lengths": spans,
                    "mean_span_length": float(spans.mean()) if spans.size else None,
                }
            )
        out["denoisers"] = per
    return out


def _prefix_lm(manifest: Mapping[str, Any], features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The predicted share of each piece (the target over prefix + target) and how full the rows are."""
    pad = manifest["tokenizer"]["special_ids"]["pad"]
    if "input_ids" in features:
        raw = np.count_nonzero(features["input_ids"] != pad, axis=1)  # a run of the eos-ended stream, no eos added
        target = raw - features["prefix_length"][:, 0]
        fill = {"inputs_fill": np.count_nonzero(features["input_ids"] != pad, axis=1) / features["input_ids"].shape[1]}
    else:
        target = _body_lengths(features["targets"], pad, 0)
        raw = _body_lengths(features["inputs"], pad, 0) + target
        fill = {
            "inputs_fill": np.count_nonzero(features["inputs"] != pad, axis=1) / features["inputs"].shape[1],
            "targets_fill": np.count_nonzero(features["targets"] != pad, axis=1) / features["targets"].shape[1],
        }
    return {
        "noise_tokens": int(target.sum()),
        "raw_tokens": int(raw.sum()),
        "noise_density": float(target.sum() / max(raw.sum(), 1)),
        "target_share": target / np.maximum(raw, 1),
        **fill,
    }


def expected(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the configuration promises, under the names `measure_split` uses."""
    objective = manifest["objective"]["name"]
    params = manifest["objective"]["params"]
    if objective in BERT:
        out: dict[str, Any] = {}
        if params["masking"] == "static":
            out.update(masked_fraction=params["masked_lm_prob"], mask_share=MASK_SHARE, random_share=RANDOM_SHARE, kept_share=1 - MASK_SHARE - RANDOM_SHARE)
        if objective != "mlm":
            out["label_1_share"] = 0.5
        return out
    if objective == "span_corruption":
        return _span_expectation(params["raw_length"], params["noise_density"], params["mean_noise_span_length"])
    if objective == "prefix_lm":
        return {"noise_density": 0.5}  # the split is uniform over [1, n - 1]
    if objective == "ul2":
        return {
            "denoisers": [
                {"share": d["rate"], **({} if d["prefix_lm"] else _span_expectation(d["raw_length"], d["density"], d["mean_span"]))}
                for d in params["denoisers"]
            ]
        }
    return {}


def _span_expectation(raw_length: int, density: float, mean_span: float) -> dict[str, float]:
    """The configured density and mean span, and the mean span T5's count rule gives a full piece.

    The rule rounds the number of spans, so a full piece's mean span can be far
    from the configured one (UL2's 64/0.15 on 599 tokens: 90 noise tokens in one span).
    """
    noise, spans = noise_counts(raw_length, density, mean_span)
    return {"noise_density": density, "configured_mean_span": mean_span, "mean_span_length": float(noise / spans)}
