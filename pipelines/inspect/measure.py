"""The numbers of `tokenmill report`, computed from the examples alone: numpy in, a dict out, no drawing.

`tally` counts one batch of examples (a shard): sums, one value per example
or per span, token frequencies. `merge` adds tallies up, so a split is read a
shard at a time and never held whole; `summarize` turns a tally into the
figures (shares, fractions, means). `expected` gives the values the
manifest's configuration promises, so the report can set each measured
figure beside the one it should be near. The table, the HTML page and the
tests all read the same dicts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from schemas import Schema
from transforms.objectives import BERT_OBJECTIVES as BERT
from transforms.objectives.bert_masking import MASK_SHARE, RANDOM_SHARE, num_to_predict
from transforms.objectives.t5 import noise_counts

TOP_TOKENS = 20


def tally(manifest: Mapping[str, Any], features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Sums, per-example and per-span values and token counts of a batch of examples; `merge` adds tallies up."""
    objective = manifest["objective"]["name"]
    schema = Schema.from_manifest(objective, manifest["features"])
    pad = manifest["tokenizer"]["special_ids"]["pad"]
    counted = [f for f in schema.features if f.counts_tokens]
    num = next(iter(features.values())).shape[0]
    real = {f.name: features[f.name] != pad for f in counted}
    values = np.concatenate([features[name][mask] for name, mask in real.items()]).astype(np.int64)
    out: dict[str, Any] = {
        "examples": int(num),
        "tokens": int(values.size),
        "positions": num * sum(f.length for f in counted),
        "real_tokens_per_example": sum(np.count_nonzero(r, axis=1) for r in real.values()),
        "token_counts": np.bincount(values),
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


def merge(tallies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Tallies added up: numbers summed, arrays joined (token counts summed), per-denoiser tallies merged in turn."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for t in tallies for k in t):
        parts = [t[key] for t in tallies if key in t]
        if key == "token_counts":
            counts = np.zeros(max(p.size for p in parts), dtype=np.int64)
            for p in parts:
                counts[: p.size] += p
            out[key] = counts
        elif isinstance(parts[0], np.ndarray):
            out[key] = np.concatenate(parts)
        elif isinstance(parts[0], list):
            out[key] = [merge(group) for group in zip(*parts)]
        else:
            out[key] = sum(parts)
    return out


def summarize(counts: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a split from its tally: what the table prints (numbers) and the plots draw (arrays)."""
    out: dict[str, Any] = {
        "examples": counts["examples"],
        "tokens": counts["tokens"],
        "padding_fraction": 1 - counts["tokens"] / counts["positions"] if counts["positions"] else 0.0,
        "real_tokens_per_example": counts["real_tokens_per_example"],
        "top_tokens": _top_tokens(counts["token_counts"]),
    }
    hidden = {"positions", "token_counts", "label_1", "predicted", "mask_count", "random_count", "kept_count", "denoisers"}
    out.update((k, v) for k, v in counts.items() if k not in out and k not in hidden)
    if "documents_per_row" in counts:
        out["mean_documents_per_row"] = float(counts["documents_per_row"].mean())
    if "label_1" in counts:
        out["label_1_share"] = counts["label_1"] / counts["examples"]
    if "predicted" in counts:
        total = max(counts["predicted"], 1)
        out["masked_fraction"] = counts["predicted"] / counts["tokens"]
        out.update({f"{kind}_share": counts[f"{kind}_count"] / total for kind in ("mask", "random", "kept")})
    if "noise_tokens" in counts:
        out.update(_noise_figures(counts))
    if "denoisers" in counts:
        out["denoisers"] = [
            {"examples": d["examples"], "share": d["examples"] / max(counts["examples"], 1), **_noise_figures(d)}
            for d in counts["denoisers"]
        ]
    return out


def _noise_figures(counts: Mapping[str, Any]) -> dict[str, Any]:
    figures = {
        "noise_tokens": counts["noise_tokens"],
        "raw_tokens": counts["raw_tokens"],
        "noise_density": counts["noise_tokens"] / max(counts["raw_tokens"], 1),
    }
    if "span_lengths" in counts:
        spans = counts["span_lengths"]
        figures.update(span_lengths=spans, mean_span_length=float(spans.mean()) if spans.size else None)
    return figures


def _top_tokens(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most frequent ids (padding is never counted) and their counts."""
    top = np.argsort(-counts, kind="stable")[:TOP_TOKENS]
    top = top[counts[top] > 0]
    return top, counts[top]


def _clm(features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    segments = features["segment_ids"].astype(np.int64)
    row_length = segments.shape[1]
    key = (np.arange(segments.shape[0])[:, None] * (row_length + 1) + segments)[segments > 0]
    _, piece_lengths = np.unique(key, return_counts=True)
    return {"documents_per_row": segments.max(axis=1), "piece_lengths": piece_lengths}


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
        out["label_1"] = int(features["next_sentence_labels"][:, 0].sum())
    else:
        out["length_a"] = real - 2
    if "masked_lm_positions" in features:
        used = features["masked_lm_weights"] > 0
        shown = np.take_along_axis(features["input_ids"], features["masked_lm_positions"], axis=1)[used]
        original = features["masked_lm_ids"][used]
        is_mask = shown == special["[MASK]"]
        is_kept = ~is_mask & (shown == original)
        out.update(
            {
                "predictions_per_example": np.count_nonzero(used, axis=1),
                "expected_predictions_per_example": num_to_predict(real, params["masked_lm_prob"], params["max_predictions"]),
                "predicted": int(used.sum()),
                "mask_count": int(is_mask.sum()),
                "random_count": int((~is_mask & ~is_kept).sum()),
                "kept_count": int(is_kept.sum()),
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


def _noise(lengths_in: np.ndarray, noise: np.ndarray, sentinels_in: np.ndarray) -> dict[str, int]:
    return {"noise_tokens": int(noise.sum()), "raw_tokens": int((lengths_in - sentinels_in + noise).sum())}


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
        "inputs_fill": np.count_nonzero(inputs != pad, axis=1) / inputs.shape[1],
        "targets_fill": np.count_nonzero(targets != pad, axis=1) / targets.shape[1],
    }
    if "denoiser" in features:
        per = []
        for index in range(len(params["denoisers"])):
            rows = denoiser == index
            spans = span_lengths[rows[span_row]]
            per.append({"examples": int(rows.sum()), **_noise(lengths_in[rows], noise[rows], sentinels_in[rows]), "span_lengths": spans})
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
    return {"noise_tokens": int(target.sum()), "raw_tokens": int(raw.sum()), "target_share": target / np.maximum(raw, 1), **fill}


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
