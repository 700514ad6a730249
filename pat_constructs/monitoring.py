"""On-call topic, alarms and the dashboard: the facade that materializes the alarm catalog (pat_constructs.alarms).
Every alarm notifies on ALARM and on OK, and its description names the runbook section that tells on-call what to
do (`docs/runbooks.md#<anchor>`).

Laid out like cdk-monitoring-constructs (metric factories per service, a catalog of alarms, a facade that creates
alarms and the dashboard) without depending on it: each alarm here needs an OK action, a runbook anchor and a
threshold from config, the ElastiCache signals are metric math over fixed node ids, and the library would add a
dependency pinned to its own aws-cdk-lib range, with its own alarm naming and dashboard layout to override.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from pat_constructs import controls
from pat_constructs.alarms.catalog import AlarmSpec
from pat_constructs.compliance import acknowledge
from pat_constructs.queues import failure_queue
from pat_data.contract import PhysicalNames

RUNBOOK = "docs/runbooks.md"


def topic_name(env_name: str) -> str:
    return PhysicalNames(env_name).on_call_topic


def topic_arn(env_name: str) -> str:
    """The on-call topic's ARN from its fixed name, for alarms in stacks that must not import from the Ops stack."""
    return f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{topic_name(env_name)}"


class OnCallTopic(Construct):
    """The environment's paging topic: KMS-encrypted, TLS-only publishers, subscriptions from config."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        encryption_key: kms.IKey,
        emails: Sequence[str],
        https_endpoints: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name(env_name),
            display_name=f"Pat {env_name} on-call",
            master_key=encryption_key,
            enforce_ssl=True,
        )
        # CloudWatch alarms of this account may publish (the key policy lets CloudWatch use the key).
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        # Pages SNS could not deliver (bounced email, pager endpoint down) are kept for 14 days, not dropped.
        self.undelivered = failure_queue(self, "Undelivered", encryption_key=encryption_key)
        acknowledge(self.undelivered, controls.TERMINAL_QUEUE)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email, dead_letter_queue=self.undelivered))
        for url in https_endpoints:
            self.topic.add_subscription(
                subscriptions.UrlSubscription(
                    url, protocol=sns.SubscriptionProtocol.HTTPS, dead_letter_queue=self.undelivered
                )
            )


class Alarms(Construct):
    """Creates the alarms of `specs` with ALARM and OK actions to the topic; `alarms` groups them by tier."""

    def __init__(
        self, scope: Construct, construct_id: str, *, env_name: str, topic: sns.ITopic, specs: Sequence[AlarmSpec]
    ) -> None:
        super().__init__(scope, construct_id)
        action = actions.SnsAction(topic)
        self.alarms: dict[str, list[cloudwatch.Alarm]] = {}
        self.specs = list(specs)
        for spec in specs:
            alarm = cloudwatch.Alarm(
                self,
                spec.name,
                alarm_name=PhysicalNames(env_name).alarm(spec.slug),
                alarm_description=f"{spec.summary} Runbook: {RUNBOOK}#{spec.runbook}",
                metric=spec.metric,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                treat_missing_data=spec.missing_data,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms.setdefault(spec.tier, []).append(alarm)


class OpsDashboard(Construct):
    """One dashboard per environment: alarm status on top, then the same signals graphed by tier."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        alarms: Alarms,
        extra: Mapping[str, list[cloudwatch.IWidget]],
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=PhysicalNames(env_name).dashboard)
        every = [alarm for tier in alarms.alarms.values() for alarm in tier]
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title=f"Pat {env_name}: alarms", alarms=every, width=24, height=4)
        )
        specs = {spec.name: spec for spec in alarms.specs}
        for tier, tier_alarms in alarms.alarms.items():
            widgets: list[cloudwatch.IWidget] = [cloudwatch.TextWidget(markdown=f"## {tier}", width=24, height=1)]
            for alarm in tier_alarms:
                spec = specs[alarm.node.id]
                widgets.append(
                    cloudwatch.GraphWidget(
                        title=spec.summary.split(":")[0][:60],
                        left=[spec.metric],
                        left_annotations=[cloudwatch.HorizontalAnnotation(value=spec.threshold, label="alarm")],
                        width=8,
                        height=5,
                    )
                )
            widgets.extend(extra.get(tier, []))
            self.dashboard.add_widgets(*widgets)
