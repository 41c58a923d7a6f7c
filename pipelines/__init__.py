"""The tokenmill application: planning, composing and launching builds.

Apache Beam logs "apitools not found, and bigquery client libraries are not
available" on import whenever its optional GCP extras are not installed (a
plain local install); it is about BigQuery, which tokenmill never uses, so
the command line hides that one message.
"""

import logging


def _not_bigquery_import_noise(record: logging.LogRecord) -> bool:
    return "bigquery client libraries are not available" not in record.getMessage()


logging.getLogger().addFilter(_not_bigquery_import_noise)
