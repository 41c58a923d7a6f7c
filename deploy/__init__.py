"""Launchers that sit above the CLI: the Dataflow Flex Template (`template.py`, `flex_template/`) and the nightly Airflow DAG (`airflow/`)."""
