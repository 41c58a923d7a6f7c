"""`tokenmill report`: a version's examples measured beside its configuration, as a terminal table or one HTML page.

The page is self-contained: every plot is a PNG inside it as base64 and
nothing refers outside the file, so it can be mailed or attached to a run.
Plots need matplotlib (the `report` extra); the table does not.

    python -m pipelines.inspect.report --sample-png docs/report-sample.png

remakes the sample plot of the docs from a fresh build of the sample corpus.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import sys
import tempfile
from typing import Any, Mapping, TextIO

import numpy as np

from pipelines.inspect.measure import expected, merge, summarize, tally
from pipelines.inspect.shards import default_progress_stream, even_sample, iter_shards
from pipelines.inspect.tokens import Tokens
from readers.manifest import Corpus
from readers.records import open_binary

DEAD_LETTERS_SHOWN = 3
MISSING_MATPLOTLIB = "the HTML report draws with matplotlib, which is not installed: pip install 'tokenmill[report]'"


def measure_version(corpus: Corpus, sample: int | None = None, fmt: str = "parquet", progress: TextIO | None = None) -> dict[str, Any]:
    """Every split measured a shard at a time (all its examples, or `sample` spread evenly), with the expected values."""
    empty = {f.name: np.zeros((0, f.length), f.numpy_dtype) for f in corpus.schema.features}
    splits = {}
    for split in corpus.manifest["totals"]:
        indices = even_sample(corpus.num_examples(split), sample)
        tallies = [tally(corpus.manifest, features) for _, _, features in iter_shards(corpus, split, fmt, indices, progress)]
        splits[split] = summarize(merge(tallies or [tally(corpus.manifest, empty)]))
    return {"splits": splits, "expected": expected(corpus.manifest), "sampled": sample is not None}


def dead_letters(corpus: Corpus, count: int = DEAD_LETTERS_SHOWN) -> list[dict[str, Any]]:
    """Each dead-letter file of the manifest with its first `count` records."""
    out = []
    for entry in corpus.manifest.get("errors", []):
        with open_binary(f"{corpus.root}/{entry['path']}") as f:
            lines = [f.readline().decode("utf-8") for _ in range(min(count, entry["records"]))]
        out.append({**entry, "examples": [json.loads(line) for line in lines if line.strip()]})
    return out


def _scalars(numbers: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def summary_table(corpus: Corpus, measured: Mapping[str, Any]) -> str:
    """The figures as text: one block per split, each measured value beside the expected one (and the manifest's)."""
    manifest = corpus.manifest
    want = measured["expected"]
    lines = [f"{manifest['objective']['name']} · {corpus.root}" + (" (an even sample)" if measured["sampled"] else "")]
    for split, numbers in measured["splits"].items():
        totals = manifest["totals"][split]
        lines.append(f"\n{split}")
        lines.append(f"  {'figure':<28}{'measured':>14}{'expected':>14}")
        # the manifest's totals: the same counts when every example is read; a sample is held only to the padding share
        beside = {"padding_fraction": totals["padding_fraction"]}
        if not measured["sampled"]:
            beside.update(examples=totals["examples"], tokens=totals["tokens"])
        beside.update((k, v) for k, v in want.items() if k != "denoisers")
        for name, value in _scalars(numbers).items():
            lines.append(f"  {name:<28}{_figure(value):>14}{_figure(beside.get(name)):>14}")
        lengths = numbers["real_tokens_per_example"]
        if lengths.size:
            lines.append(f"  {'real tokens per example':<28}{'min %d  median %d  max %d' % (lengths.min(), np.median(lengths), lengths.max()):>28}")
        for index, (d, w) in enumerate(zip(numbers.get("denoisers", []), want.get("denoisers", []))):
            for name in ("share", "noise_density", "mean_span_length", "configured_mean_span"):
                lines.append(f"  {f'denoiser {index} {name}':<28}{_figure(d.get(name)):>14}{_figure(w.get(name)):>14}")
    counters = manifest["counters"]
    lines.append(f"\ncounters: {counters['records_read']:,} records read, {counters['documents_used']:,} documents used, {counters['documents_dropped_total']:,} dropped")
    for reason, n in counters["documents_dropped"].items():
        lines.append(f"  dropped {reason}: {n:,}")
    return "\n".join(lines)


def _figure(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}"


# The HTML page.


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_row(count: int, width: float = 4.2, height: float = 3.0):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False)
    return figure, axes[0]


def _measured_vs_expected(ax, labels: list[str], measured: list[float], wanted: list[float | None], title: str) -> None:
    x = np.arange(len(labels))
    ax.bar(x - 0.2, measured, 0.4, label="measured", color="#3a7ca5")
    ax.bar(x + 0.2, [w if w is not None else 0 for w in wanted], 0.4, label="expected", color="#c9c9c9", edgecolor="#555")
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def _hist(
    ax, values: np.ndarray, title: str, xlabel: str, line: float | None = None, line_label: str = "",
    expected_values: np.ndarray | None = None, second_line: float | None = None, second_label: str = "",
) -> None:
    """A histogram of `values`; `expected_values` as an outline over the same bins, `line`s as dashed markers."""
    values = np.asarray(values)
    if values.size:
        bins = np.arange(values.min(), values.max() + 2) - 0.5 if values.dtype.kind in "iu" and values.max() - values.min() < 80 else 40
        _, bins, _ = ax.hist(values, bins=bins, color="#3a7ca5", label="measured")
        if expected_values is not None:
            ax.hist(expected_values, bins=bins, histtype="step", color="#d1495b", linewidth=1.5, label="expected")
    else:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    if line is not None:
        ax.axvline(line, color="#d1495b", linestyle="--", label=line_label)
    if second_line is not None:
        ax.axvline(second_line, color="#6a4c93", linestyle=":", linewidth=2, label=second_label)
    if line is not None or expected_values is not None:
        ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)


def plots(corpus: Corpus, measured: Mapping[str, Any], tokens: Tokens | None) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of every plot the objective has."""
    manifest = corpus.manifest
    objective = manifest["objective"]["name"]
    params = manifest["objective"]["params"]
    want = measured["expected"]
    splits = measured["splits"]
    train = splits.get("train") or next(iter(splits.values()))
    out = []

    figure, (a, b, c) = _figure_row(3)
    names = list(splits)
    a.bar(names, [splits[s]["examples"] for s in names], color="#3a7ca5")
    a.set_title("examples", fontsize=10)
    b.bar(names, [splits[s]["tokens"] for s in names], color="#3a7ca5")
    b.set_title("tokens (not padding)", fontsize=10)
    _measured_vs_expected(c, names, [splits[s]["padding_fraction"] for s in names], [manifest["totals"][s]["padding_fraction"] for s in names], "padding fraction (expected: manifest)")
    out.append(("Per split: examples, tokens and the share of padding.", _png(figure)))

    figure, axes = _figure_row(len(splits))
    row_length = sum(f["length"] for f in manifest["features"] if f["counts_tokens"])
    for ax, split in zip(axes, names):
        _hist(ax, splits[split]["real_tokens_per_example"], f"{split}: real tokens per example", "tokens", row_length, f"room: {row_length}")
    out.append(("Real (non-padding) tokens per example.", _png(figure)))

    if objective == "clm":
        figure, (a, b) = _figure_row(2)
        _hist(a, train["documents_per_row"], "document pieces per row", "pieces")
        _hist(b, train["piece_lengths"], "piece lengths", "tokens", params["seq_len"], f"seq_len {params['seq_len']}")
        out.append(("clm: how many document pieces share a row, and how long the pieces are.", _png(figure)))
    if "mask_share" in train:
        figure, (a, b, c) = _figure_row(3)
        _hist(a, train["predictions_per_example"], "predictions per example", "masked positions", expected_values=train["expected_predictions_per_example"])
        shares = ["mask_share", "random_share", "kept_share"]
        _measured_vs_expected(b, ["[MASK]", "random", "kept"], [train[k] for k in shares], [want[k] for k in shares], "what replaced each prediction")
        _measured_vs_expected(c, ["masked fraction"], [train["masked_fraction"]], [want["masked_fraction"]], "share of tokens predicted")
        out.append(("BERT masking: predictions per example, the 80/10/10 split, the masked fraction.", _png(figure)))
    if "length_a" in train:
        pair = "length_b" in train
        figure, axes = _figure_row(3 if pair else 1)
        _hist(axes[0], train["length_a"], "segment A length" if pair else "tokens between [CLS] and the last [SEP]", "tokens")
        if pair:
            _hist(axes[1], train["length_b"], "segment B length", "tokens")
            label = "NotNext share" if objective == "mlm_nsp" else "swapped share"
            _measured_vs_expected(axes[2], [label], [train["label_1_share"]], [want["label_1_share"]], "label 1 share")
        out.append(("BERT segments" + (" and the NSP/SOP label balance." if pair else "."), _png(figure)))
    if "span_lengths" in train:
        if "denoisers" in train:
            figure, axes = _figure_row(len(train["denoisers"]), width=3.0)
            for index, (ax, d, w, spec) in enumerate(zip(axes, train["denoisers"], want["denoisers"], params["denoisers"])):
                title = f"{index} {spec['name']} " + ("prefix LM" if spec["prefix_lm"] else f"{spec['mean_span']:g}/{spec['density']:g}")
                _hist(ax, d["span_lengths"], title, "span length", w.get("configured_mean_span"), "configured mean", second_line=w.get("mean_span_length"), second_label="count rule, full piece")
            out.append(("UL2 noise span lengths per denoiser, against each denoiser's configured mean span.", _png(figure)))
            figure, (a, b) = _figure_row(2, width=5.5)
            labels = [f"{i} {d['name']}" for i, d in enumerate(params["denoisers"])]
            _measured_vs_expected(a, labels, [d["share"] for d in train["denoisers"]], [w["share"] for w in want["denoisers"]], "denoiser mix vs rates")
            _measured_vs_expected(b, labels, [d["noise_density"] for d in train["denoisers"]], [w.get("noise_density") for w in want["denoisers"]], "noise density per denoiser")
            out.append(("UL2 denoiser mix and noise density, measured vs configured.", _png(figure)))
        else:
            figure, (a, b) = _figure_row(2)
            _hist(a, train["span_lengths"], "noise span lengths", "tokens", want["configured_mean_span"], "configured mean", second_line=want["mean_span_length"], second_label="count rule, full piece")
            _measured_vs_expected(b, ["noise density"], [train["noise_density"]], [want["noise_density"]], "noise density")
            out.append(("Span corruption: noise span lengths and noise density against the configuration.", _png(figure)))
    if "inputs_fill" in train:
        fills = [k for k in ("inputs_fill", "targets_fill") if k in train]
        figure, axes = _figure_row(len(fills) + ("target_share" in train))
        for ax, k in zip(axes, fills):
            _hist(ax, train[k], k.replace("_", " "), "share of the feature's length used")
        if "target_share" in train:
            _hist(axes[-1], train["target_share"], "target share of each piece", "target / (prefix + target)", want["noise_density"], "expected mean")
        out.append(("How full inputs and targets are.", _png(figure)))
    if tokens is not None and train["top_tokens"][0].size:
        ids, counts = train["top_tokens"]
        figure, ax = _figure_row(1, width=7.0, height=0.25 * ids.size + 1)
        labels = [repr(p) for p in tokens.pieces(ids)]
        ax[0].barh(np.arange(ids.size)[::-1], counts, color="#3a7ca5")
        ax[0].set_yticks(np.arange(ids.size)[::-1], labels, fontsize=8)
        ax[0].set_title("most frequent tokens (train)", fontsize=10)
        out.append(("The most frequent tokens, decoded.", _png(figure)))
    return out


def html_page(corpus: Corpus, measured: Mapping[str, Any], figures: list[tuple[str, str]], letters: list[dict[str, Any]]) -> str:
    manifest = corpus.manifest
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>tokenmill report: {e(manifest['objective']['name'])} {e(manifest['version'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}"
        "img{max-width:100%;margin:.5em 0}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}</style>",
        "</head><body>",
        f"<h1>{e(manifest['objective']['name'])} · version {e(manifest['version'])}</h1>",
        f"<p>{e(corpus.root)} — built {e(manifest['finished_at'])}; objective parameters: <code>{e(json.dumps(manifest['objective']['params'], sort_keys=True))}</code></p>",
        f"<h2>Figures</h2><pre>{e(summary_table(corpus, measured))}</pre>",
    ]
    for caption, png in figures:
        parts.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{png}'><figcaption>{e(caption)}</figcaption></figure>")
    parts.append(f"<h2>Counters</h2><pre>{e(json.dumps(manifest['counters'], indent=1, sort_keys=True))}</pre>")
    parts.append("<h2>Dead letters</h2>")
    if not letters:
        parts.append("<p>No input record was dead-lettered.</p>")
    for entry in letters:
        parts.append(f"<h3>{e(entry['reason'])}: {entry['records']:,} records ({e(entry['path'])})</h3>")
        for record in entry["examples"]:
            parts.append(f"<pre>{e(json.dumps(record, ensure_ascii=False)[:2000])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report(path: str, html_file: str | None = None, sample: int | None = None, fmt: str = "parquet", tokenizer: str | None = None, out: TextIO | None = None, progress: TextIO | None = None) -> None:
    """Print the table, or write the HTML page to `html_file`."""
    if html_file:
        try:
            import matplotlib
        except ImportError:
            raise ImportError(MISSING_MATPLOTLIB) from None
        matplotlib.use("Agg")
    out = out or sys.stdout
    corpus = Corpus(path)
    tokens = Tokens.for_manifest(corpus.manifest, tokenizer, corpus.root) if html_file else None  # a wrong tokenizer fails before the shards are read
    measured = measure_version(corpus, sample, fmt, progress or default_progress_stream())
    if not html_file:
        out.write(summary_table(corpus, measured) + "\n")
        return
    page = html_page(corpus, measured, plots(corpus, measured, tokens), dead_letters(corpus))
    with open(html_file, "w", encoding="utf-8") as f:
        f.write(page)
    out.write(f"Wrote {html_file} ({len(page) / 1e6:.1f} MB)\n")


def sample_png(target: str) -> None:
    """Build the sample corpus as ul2 into a temporary directory and save its span-length plot as `target`."""
    import matplotlib

    matplotlib.use("Agg")
    from pipelines.build import run_build
    from pipelines.config import BuildConfig

    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, "out")
        run_build(BuildConfig(objective="ul2", output=output, num_shards=2), show_progress=False)
        corpus = Corpus(output)
        measured = measure_version(corpus)
        caption, png = next((c, p) for c, p in plots(corpus, measured, None) if "span lengths per denoiser" in c)
    with open(target, "wb") as f:
        f.write(base64.b64decode(png))
    print(f"{caption}\nWrote {target}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Remake the docs' sample report plot.")
    parser.add_argument("--sample-png", required=True, metavar="FILE")
    sample_png(parser.parse_args().sample_png)
