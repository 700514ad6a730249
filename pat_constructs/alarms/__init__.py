"""The alarm catalog: metric factories per service (metrics.py) and one AlarmSpec list per tier (catalog.py).

Constructs materialize a tier with pat_constructs.monitoring.Alarms; stacks/alarms.py lists an environment's alarms
from its configuration alone.
"""
