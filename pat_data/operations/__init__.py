"""What `patops` does, as functions over boto3 clients, psycopg and redis (the CLI only parses, confirms, prints).

Every mutation takes `apply: bool`; with `apply=False` it returns the plan and calls nothing that changes state.
"""

from pat_data.operations.common import CheckFailedError, OpsError, Plan

__all__ = ["CheckFailedError", "OpsError", "Plan"]
