"""A benchmark corpus of any size without a download: the sample corpus as articles, repeated with unique ids.

The sample corpus has one document per docstring (about 100 tokens each);
pre-training corpora hold longer documents (web pages and encyclopedia
articles run to several hundred tokens and more). So here the docstrings of
one module (and each help topic) make one document, a few hundred to a few
thousand tokens, and the whole set is repeated until the size is reached.
"""

from __future__ import annotations

import itertools
import json
import os

from pipelines.sample import sample_corpus_path


def articles() -> list[dict[str, str]]:
    """The sample corpus grouped into one document per module or help topic."""
    with open(sample_corpus_path(), encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    return [
        {"id": source, "text": "\n\n".join(d["text"] for d in group)}
        for source, group in itertools.groupby(docs, key=lambda d: d["source"])
    ]


def write_corpus(path: str, megabytes: float, files: int = 1) -> dict:
    """JSONL files totalling about `megabytes` MB under `path` (a directory); returns what was written.

    Copy k of a document gets id "<id>#k", so every document has its own key
    (the pipeline mixes and splits by key) while the text stays real prose.
    """
    docs = articles()
    target = int(megabytes * 1e6)
    os.makedirs(path, exist_ok=True)
    outs = [open(os.path.join(path, f"part-{i:03d}.jsonl"), "w", encoding="utf-8") for i in range(files)]
    written = count = text_bytes = 0
    try:
        for copy in itertools.count():
            for d in docs:
                line = json.dumps({"id": f"{d['id']}#{copy}", "text": d["text"]}, ensure_ascii=False) + "\n"
                outs[count % files].write(line)
                written += len(line.encode("utf-8"))
                text_bytes += len(d["text"].encode("utf-8"))
                count += 1
                if written >= target:
                    return {"documents": count, "file_bytes": written, "text_bytes": text_bytes, "files": [o.name for o in outs]}
    finally:
        for out in outs:
            out.close()
