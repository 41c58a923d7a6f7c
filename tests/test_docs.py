"""The documentation cannot rot: its snippets run, its CLI reference is the parser's, its site builds without warnings.

Every fenced `python`, `sh` or `bash` block of README.md and docs/**/*.md runs,
the blocks of one page in order in a fresh directory, unless the line before
the fence is `<!-- docs-test: skip (reason) -->` (docs/contributing-docs.md).
They run in a venv made by the README's install line alone, not in the test
venv with every extra, so a page needing a package that line does not give fails.
"""

from __future__ import annotations

import dataclasses
import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True))
RUNNABLE = ("python", "sh", "bash")
MARKER = "<!-- docs-test"
SKIP = re.compile(r"<!-- docs-test: skip \((?P<reason>[^()]*\w[^()]*)\) -->")
FENCE = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)(?:\s.*)?")
BLOCK_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 3600
INSTALL_LINE = re.compile(r"pip install -e '\.\[all\]'")


@dataclasses.dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    skip: str | None = None  # the reason, when marked


def parse_page(text: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown page, and what is wrong with its skip markers."""
    lines = text.splitlines()
    blocks, problems = [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        opening = FENCE.fullmatch(line.rstrip())
        if opening is None:
            if line.strip().startswith(MARKER):
                marker = SKIP.fullmatch(line.strip())
                following = FENCE.fullmatch(lines[i + 1].rstrip()) if i + 1 < len(lines) else None
                if marker is None:
                    problems.append(f"line {i + 1}: write the marker as <!-- docs-test: skip (the reason) -->, got {line.strip()!r}")
                elif following is None or following["lang"] not in RUNNABLE:
                    problems.append(f"line {i + 1}: a skip marker must be the line just before a ```python or ```sh fence")
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        marker = SKIP.fullmatch(lines[i - 1].strip()) if i > 0 else None
        blocks.append(Block(opening["lang"], "\n".join(body) + "\n", i + 1, marker["reason"] if marker else None))
        i = j + 1
    return blocks, problems


def run_block(block: Block, cwd: str, env: dict[str, str], python: str) -> subprocess.CompletedProcess:
    if block.lang == "python":
        script = os.path.join(cwd, f".docs-block-{block.line}.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(block.code)
        command = [python, script]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


def snippet_env(python: str) -> dict[str, str]:
    """`tokenmill` and `python` from the venv of `python`, this checkout first on the path, the session's cache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    env["VIRTUAL_ENV"] = os.path.dirname(os.path.dirname(python))
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def readme_install_line() -> str:
    """The README's one install line (a skipped block: the docs venv below is what runs it)."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        blocks, _ = parse_page(f.read())
    (line,) = [b.code.strip() for b in blocks if b.skip and INSTALL_LINE.fullmatch(b.code.strip())]
    return line


@pytest.fixture(scope="session")
def docs_python() -> str:
    """The python of a fresh venv made by the README's install line alone, run in this checkout.

    Made once per setup.py, install line and Python version, under the user's
    cache (a few minutes, mostly the frameworks' wheels; then reused by every
    session and worktree of this machine); a lock keeps two sessions from
    making it at once, and a marker written last from using a half-made one.
    """
    with open(os.path.join(REPO, "setup.py"), "rb") as f:
        setup_py = f.read()
    line = readme_install_line()
    key = hashlib.sha256(setup_py + line.encode() + sys.version.encode()).hexdigest()[:16]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    venv = os.path.join(cache, "tokenmill-docs-venv", key)
    python, made = os.path.join(venv, "bin", "python"), os.path.join(venv, ".made-by-the-readme-install-line")
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(made):
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            env = snippet_env(python)
            env.pop("PYTHONPATH")
            result = subprocess.run(["bash", "-e", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            assert result.returncode == 0, f"the README's install line failed in a fresh venv:\n{result.stderr[-3000:]}"
            open(made, "w").close()
    return python


@pytest.mark.parametrize("page", PAGES)
def test_the_snippets_of_a_page_run(page, tmp_path, sample_corpus_path, tokenizer_path, docs_python):
    """The sample corpus and tokenizer fixtures fill the session's cache ($TOKENMILL_CACHE) once for every page."""
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        blocks, problems = parse_page(f.read())
    assert problems == [], f"{page}: {problems}"
    env = snippet_env(docs_python)
    for block in blocks:
        if block.lang not in RUNNABLE or block.skip:
            continue
        result = run_block(block, str(tmp_path), env, docs_python)
        assert result.returncode == 0, (
            f"{page}, the ```{block.lang} block at line {block.line} exited {result.returncode}\n"
            f"--- block\n{block.code}--- stdout (end)\n{result.stdout[-3000:]}\n--- stderr (end)\n{result.stderr[-3000:]}"
        )


def test_skip_markers_need_a_reason_and_a_block():
    page = "\n".join([
        "<!-- docs-test: skip (needs a cloud project) -->", "```sh", "gcloud info", "```",
        "<!-- docs-test: skip () -->", "```sh", "true", "```",
        "<!-- docs-test: skip (nothing follows) -->", "text",
        "````text", "<!-- docs-test: skip -->", "```sh", "shown, not run", "```", "````",
        "```python", "print(1)", "```",
    ])
    blocks, problems = parse_page(page)
    assert [(b.lang, b.line, b.skip) for b in blocks] == [
        ("sh", 2, "needs a cloud project"), ("sh", 6, None), ("text", 11, None), ("python", 17, None),
    ]
    assert blocks[2].code == "<!-- docs-test: skip -->\n```sh\nshown, not run\n```\n"
    assert [p.split(":")[0] for p in problems] == ["line 5", "line 9"]


def test_the_readme_quick_start_runs_and_only_the_make_commands_are_skipped():
    """The README's three `tokenmill build` lines are blocks the page's test runs; `make sample`/`make test` are what run the tests."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        blocks, _ = parse_page(f.read())
    run = [b.code for b in blocks if b.lang in RUNNABLE and not b.skip]
    skipped = [b.code.strip() for b in blocks if b.skip]
    assert skipped == ["make sample", "make test", readme_install_line()]
    assert sum("tokenmill build" in code for code in run) == 3


def test_the_readme_links_to_pages_that_exist():
    """The README is not part of the site, so `mkdocs --strict` does not check its links."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        targets = re.findall(r"\]\((?!https?://)([^)#]+)", f.read())
    assert "docs/index.md" in targets
    assert [t for t in targets if not os.path.isfile(os.path.join(REPO, t))] == []


def test_the_cli_reference_is_generated_from_the_parser():
    from pipelines.cli_reference import reference

    with open(os.path.join(DOCS, "cli.md"), encoding="utf-8") as f:
        assert f.read() == reference(), "docs/cli.md is stale: python -m pipelines.cli_reference > docs/cli.md"


def mkdocs_build(root: str, site: str) -> subprocess.CompletedProcess:
    pytest.importorskip("material", reason="MkDocs Material is not installed (make docs installs it)")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site], cwd=root, env=env, capture_output=True, text=True
    )


def test_the_site_builds_without_a_warning(tmp_path):
    result = mkdocs_build(REPO, str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr


@pytest.mark.parametrize(
    "link, message",
    [
        ("[options](objectives/clm.md#no-such-heading)", "does not contain an anchor '#no-such-heading'"),
        ("[a page](no-such-page.md)", "'no-such-page.md', but the target is not found"),
    ],
)
def test_a_broken_link_fails_the_site_build(tmp_path, link, message):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(os.path.join(REPO, "mkdocs.yml"), tmp_path)
    with open(tmp_path / "docs" / "index.md", "a", encoding="utf-8") as f:
        f.write(f"\nSee {link}.\n")
    result = mkdocs_build(str(tmp_path), str(tmp_path / "site"))
    assert result.returncode != 0
    assert message in result.stderr
