"""What a trainer and a worker import: objectives and schemas without Beam; the pipeline without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(result.stdout.strip().splitlines()[-1])}


def test_objectives_schemas_and_readers_import_without_beam_or_tensorflow():
    modules = loaded_after(
        "import schemas, transforms.objectives, transforms.objectives.bert_masking, transforms.codec, transforms.vocab, readers.manifest"
    )
    assert "apache_beam" not in modules and "tensorflow" not in modules


def test_the_pipeline_and_its_workers_code_never_import_tensorflow():
    modules = loaded_after(
        "import pipelines.cli, pipelines.build, pipelines.rebuild, transforms.read, transforms.tokenize, "
        "transforms.examples, transforms.write, transforms.manifest, runners.local"
    )
    assert "apache_beam" in modules and "tensorflow" not in modules
