"""The nightly DAG, loaded by Airflow's own DagBag in the Airflow venv `make test` creates (.venv-airflow)."""

from __future__ import annotations

import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIRFLOW_PYTHON = os.path.join(REPO, ".venv-airflow", "bin", "python")
DAG_FOLDER = os.path.join(REPO, "deploy", "airflow")

SETTINGS = {
    "project": "my-project",
    "region": "us-central1",
    "template": "gs://my-bucket/templates/tokenmill.json",
    "parameters": {"input": "gs://my-bucket/raw/*.jsonl.gz", "output": "gs://my-bucket/corpus", "tokenizer": "gs://my-bucket/spm.model", "seq_len": "2048", "keep": "3"},
    "environment": {"tempLocation": "gs://my-bucket/tmp", "machineType": "n2-standard-4", "maxWorkers": 32},
}

# Runs inside the Airflow venv: load the folder, describe the DAG, render the task as a run would.
PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.execution_time.context import VariableAccessor

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dag_ids)}
dag = bag.dags.get("tokenmill_nightly_rebuild")
if dag:
    task = dag.get_task("rebuild")
    out.update(
        schedule=str(dag.schedule), catchup=dag.catchup, max_active_runs=dag.max_active_runs,
        tasks=[t.task_id for t in dag.tasks], operator=type(task).__name__, retries=task.retries,
        wait_until_finished=task.wait_until_finished,
        imported=sorted(m for m in ("apache_beam", "pipelines", "transforms", "runners") if m in sys.modules),
    )
    task.render_template_fields({"var": {"json": VariableAccessor(deserialize_json=True)}, "ds_nodash": "20250102"})
    out.update(body=task.body, project_id=task.project_id, location=task.location)
print(json.dumps(out))
"""


def test_dagbag_loads_the_nightly_rebuild_dag(tmp_path):
    assert os.path.exists(AIRFLOW_PYTHON), f"{AIRFLOW_PYTHON} is missing: `make test` creates it (alone: make .venv-airflow/.installed)"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_VAR_TOKENMILL_NIGHTLY": json.dumps(SETTINGS),
    }
    result = subprocess.run([AIRFLOW_PYTHON, "-W", "ignore", "-c", PROBE, DAG_FOLDER], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    dag = json.loads(result.stdout.strip().splitlines()[-1])
    assert dag["import_errors"] == {} and dag["dag_ids"] == ["tokenmill_nightly_rebuild"]
    assert dag["schedule"] == "0 3 * * *" and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["tasks"] == ["rebuild"] and dag["operator"] == "DataflowStartFlexTemplateOperator"
    assert dag["retries"] == 2 and dag["wait_until_finished"] is True
    assert dag["imported"] == [], "the DAG file must not import tokenmill or Beam"

    launch = dag["body"]["launchParameter"]
    assert (dag["project_id"], dag["location"]) == ("my-project", "us-central1")
    assert launch == {
        "jobName": "tokenmill-rebuild-20250102",
        "containerSpecGcsPath": SETTINGS["template"],
        "parameters": SETTINGS["parameters"],
        "environment": SETTINGS["environment"],
    }
    with open(os.path.join(REPO, "deploy", "flex_template", "metadata.json"), encoding="utf-8") as f:
        template_parameters = {p["name"] for p in json.load(f)["parameters"]}
    assert set(launch["parameters"]) <= template_parameters
