"""What `patops` does, as functions over boto3 clients, psycopg and redis (the CLI only parses, confirms, prints).

Every mutation takes `apply: bool`; with `apply=False` it returns the plan and calls nothing that changes state.
Every AWS call that can return pages reads all of them (a paginator, or `all_pages`).
"""

from pat_data.operations.common import Plan, all_pages
from pat_data.operations.errors import CheckFailedError, PatopsError, PreconditionError, RefusedError, translate

__all__ = ["CheckFailedError", "PatopsError", "Plan", "PreconditionError", "RefusedError", "all_pages", "translate"]
