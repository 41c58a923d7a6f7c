"""The built-in sample corpus: real English text that ships with every Python.

Documents are the docstrings of the standard library's modules, classes and
functions plus the topic pages of the interactive help (`pydoc_data`),
extracted at run time, so the first command of the README needs no download.
The corpus and a SentencePiece model trained on it are cached on first use.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import sysconfig
from typing import Iterator

from pipelines.tokenizer import train_sentencepiece

SAMPLE_VOCAB_SIZE = 8000
_SKIP_DIRS = {"site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"}
_MIN_CHARS = 80


def cache_dir() -> str:
    """$TOKENMILL_CACHE, else $XDG_CACHE_HOME/tokenmill, else ~/.cache/tokenmill."""
    root = os.environ.get("TOKENMILL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tokenmill"
    )
    return os.path.join(root, f"sample-v2-py{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}")


def _docstrings(path: str, module: str) -> Iterator[tuple[str, str]]:
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (SyntaxError, ValueError, OSError):
        return
    stack = [(tree, module)]
    while stack:
        node, name = stack.pop(0)
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc) >= _MIN_CHARS:
            yield name, doc
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                stack.append((child, f"{name}.{child.name}"))


def sample_documents() -> Iterator[dict[str, str]]:
    """{"id", "text", "source"} for every sample document, in a fixed order (source: the module or help topic)."""
    root = sysconfig.get_paths()["stdlib"]
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                for qualname, doc in _docstrings(path, module):
                    yield {"id": f"stdlib:{qualname}", "text": doc, "source": module}
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for topic in sorted(topics):
        text = topics[topic].strip()
        if len(text) >= _MIN_CHARS:
            yield {"id": f"pydoc-topic:{topic}", "text": text, "source": f"pydoc-topic:{topic}"}


def _write_once(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def sample_corpus_path() -> str:
    """The sample corpus as JSON lines, extracted on first use."""
    path = os.path.join(cache_dir(), "corpus.jsonl")
    if not os.path.exists(path):
        lines = (json.dumps(d, ensure_ascii=False) for d in sample_documents())
        _write_once(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def sample_tokenizer_path(vocab_size: int = SAMPLE_VOCAB_SIZE) -> str:
    """A SentencePiece model trained on the sample corpus, trained on first use.

    Two training threads whatever the machine, so every machine with the same
    Python trains the same model.
    """
    corpus = sample_corpus_path()
    with open(corpus, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    path = os.path.join(cache_dir(), f"sample-{vocab_size}-{digest}.model")
    if not os.path.exists(path):
        with open(corpus, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f]
        _write_once(path, train_sentencepiece(texts, vocab_size, threads=2))
    return path
