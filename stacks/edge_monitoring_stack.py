"""Pat-<env>-EdgeMonitoring (us-east-1): the CDN alarm, where CloudFront publishes its metrics."""

from __future__ import annotations

from constructs import Construct

from pat_constructs.alarms import catalog
from pat_constructs.alarms.metrics import CloudFrontMetrics
from pat_constructs.keys import DATA_CLASSES, data_key
from pat_constructs.monitoring import Alarms, OnCallTopic
from stacks.base import PatStack
from stacks.config import EnvironmentConfig

EDGE_REGION = "us-east-1"
LOGS = next(c for c in DATA_CLASSES if c.name == "logs")


class EdgeMonitoringStack(PatStack):
    """Pat-<env>-EdgeMonitoring (us-east-1): CloudFront publishes its metrics in us-east-1 only, and an alarm must
    live in its metric's region, so the CDN alarm gets its own topic (same subscriptions) and key there."""

    def __init__(self, scope: Construct, *, config: EnvironmentConfig, distribution_id: str) -> None:
        super().__init__(
            scope,
            config=config,
            part="EdgeMonitoring",
            description="CloudFront alarm (us-east-1)",
            region=EDGE_REGION,
            cross_region_references=True,
        )
        env, ops = config.name, config.ops
        key = data_key(self, "Key", env_name=env, data_class=LOGS)
        self.on_call = OnCallTopic(
            self,
            "OnCall",
            env_name=env,
            encryption_key=key,
            emails=ops.alarm_emails,
            https_endpoints=ops.alarm_https_endpoints,
        )
        specs = catalog.cdn(
            CloudFrontMetrics(distribution_id), error_rate_percent=ops.thresholds.cdn_5xx_error_rate_percent
        )
        self.alarms = Alarms(self, "Alarms", env_name=env, topic=self.on_call.topic, specs=specs)
