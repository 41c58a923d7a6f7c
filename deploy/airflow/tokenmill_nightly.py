"""Nightly tokenmill rebuild on Dataflow, for Airflow 3 and Cloud Composer.

Once a night the `rebuild` task launches the tokenmill Flex Template
(deploy/flex_template/) and waits for the job. The job builds a new version
only if the inputs, tokenizer, config or code changed; it verifies it, moves
LATEST and prunes old versions, and otherwise just verifies the published
version. A failed job never moves LATEST, so a retry is always safe; the next
successful run removes what a failed one left.

Settings come from the Airflow Variable `tokenmill_nightly` (JSON), read when
the task runs. `parameters` are the template's (deploy/flex_template/metadata.json:
every `tokenmill rebuild` option, `--seq-len` as `seq_len`), all values strings;
`environment` is Dataflow's launch environment:

    {"project": "my-project", "region": "us-central1",
     "template": "gs://my-bucket/templates/tokenmill.json",
     "parameters": {"input": "gs://my-bucket/raw/*.jsonl.gz", "output": "gs://my-bucket/corpus",
                    "tokenizer": "gs://my-bucket/spm.model", "seq_len": "2048", "keep": "3"},
     "environment": {"tempLocation": "gs://my-bucket/tmp", "machineType": "n2-standard-4", "maxWorkers": 32}}

The scheduler parses this file every few seconds: it imports neither tokenmill nor Beam.
"""

from __future__ import annotations

import datetime

from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator
from airflow.sdk import DAG

SETTINGS = "var.json.tokenmill_nightly"

with DAG(
    dag_id="tokenmill_nightly_rebuild",
    description="Rebuild the tokenmill corpus on Dataflow if anything changed; verify it otherwise.",
    schedule="0 3 * * *",  # 03:00 UTC, after the day's data has landed
    start_date=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,  # one rebuild covers every missed night
    max_active_runs=1,  # two rebuilds of one output must never overlap
    dagrun_timeout=datetime.timedelta(hours=20),
    render_template_as_native_obj=True,  # `parameters` and `environment` render as dicts
    default_args={
        "retries": 2,
        "retry_delay": datetime.timedelta(minutes=15),
        "retry_exponential_backoff": True,
    },
    tags=["tokenmill", "dataflow"],
) as dag:
    DataflowStartFlexTemplateOperator(
        task_id="rebuild",
        project_id="{{ %s.project }}" % SETTINGS,
        location="{{ %s.region }}" % SETTINGS,
        body={
            "launchParameter": {
                "jobName": "tokenmill-rebuild-{{ ds_nodash }}",
                "containerSpecGcsPath": "{{ %s.template }}" % SETTINGS,
                "parameters": "{{ %s.parameters }}" % SETTINGS,
                "environment": "{{ %s.environment }}" % SETTINGS,
            }
        },
        wait_until_finished=True,
        execution_timeout=datetime.timedelta(hours=12),
    )
