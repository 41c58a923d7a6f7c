"""A benchmark corpus of any size without a download: the sample corpus repeated with unique ids."""

from __future__ import annotations

import json
import os

from pipelines.sample import sample_corpus_path


def write_corpus(path: str, megabytes: float, files: int = 1) -> dict:
    """JSONL files totalling about `megabytes` MB under `path` (a directory); returns what was written.

    Copy k of a document gets id "<id>#k", so every document has its own key
    (the pipeline mixes and splits by key) while the text stays real prose.
    """
    with open(sample_corpus_path(), encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    target = int(megabytes * 1e6)
    os.makedirs(path, exist_ok=True)
    outs = [open(os.path.join(path, f"part-{i:03d}.jsonl"), "w", encoding="utf-8") for i in range(files)]
    written = count = text_bytes = 0
    copy = 0
    try:
        while written < target:
            for d in docs:
                line = json.dumps({"id": f"{d['id']}#{copy}", "text": d["text"]}, ensure_ascii=False) + "\n"
                outs[count % files].write(line)
                written += len(line.encode("utf-8"))
                text_bytes += len(d["text"].encode("utf-8"))
                count += 1
                if written >= target:
                    break
            copy += 1
    finally:
        for out in outs:
            out.close()
    return {"documents": count, "file_bytes": written, "text_bytes": text_bytes, "files": [o.name for o in outs]}
