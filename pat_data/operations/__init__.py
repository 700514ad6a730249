"""What `patops` does, as functions over boto3 clients, psycopg and redis (the CLI only parses, confirms, prints).

Every mutation takes `apply: bool`; with `apply=False` it returns the plan and calls nothing that changes state.
Every AWS call that can return pages reads all of them (`all_pages`, or a paginator).
"""

from pat_data.operations.common import CheckFailedError, OpsError, Plan, all_pages

__all__ = ["CheckFailedError", "OpsError", "Plan", "all_pages"]
