"""The replacement detector behind `make replacements`, on small templates."""

from __future__ import annotations

from typing import Any

from scripts.replacements import compare


def template(**resources: Any) -> dict[str, Any]:
    return {"Resources": resources}


BUCKET: dict[str, Any] = {
    "Type": "AWS::S3::Bucket",
    "Properties": {"BucketName": "pat-prod-attachments", "VersioningConfiguration": {}},
}
TOPIC: dict[str, Any] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}


def test_renamed_bucket_moved_construct_and_removed_stack_are_reported() -> None:
    base = {
        "Pat-prod-Storage": template(Bucket1=BUCKET, Topic1=TOPIC),
        "Pat-prod-Old": template(Topic2=TOPIC),
    }
    renamed = {**BUCKET, "Properties": {**BUCKET["Properties"], "BucketName": "pat-prod-files"}}
    head = {"Pat-prod-Storage": template(Bucket1=renamed, TopicMoved=TOPIC)}
    changes = {(c.stack, c.logical_id, c.action, c.stateful): c.reason for c in compare(base, head)}
    assert changes == {
        ("Pat-prod-Storage", "Bucket1", "REPLACE", True): "BucketName changed",
        ("Pat-prod-Storage", "Topic1", "DELETE", False): "logical ID gone (moved or renamed construct?)",
        ("Pat-prod-Old", "Topic2", "DELETE", False): "stack removed",
    }


def test_updatable_property_changes_are_not_replacements() -> None:
    updated = {**BUCKET, "Properties": {**BUCKET["Properties"], "VersioningConfiguration": {"Status": "Enabled"}}}
    assert compare({"S": template(B=BUCKET)}, {"S": template(B=updated)}) == []


def test_a_replaced_writer_instance_or_security_group_is_disruptive_though_not_stateful() -> None:
    writer: dict[str, Any] = {
        "Type": "AWS::RDS::DBInstance",
        "Properties": {"DBClusterIdentifier": {"Ref": "C"}, "AvailabilityZone": "a"},
    }
    moved = {**writer, "Properties": {**writer["Properties"], "AvailabilityZone": "b"}}
    group: dict[str, Any] = {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {"GroupDescription": "old", "VpcId": "vpc-1"},
    }
    renamed = {**group, "Properties": {**group["Properties"], "GroupDescription": "new"}}
    changes = compare({"S": template(W=writer, G=group)}, {"S": template(W=moved, G=renamed)})
    assert {(c.logical_id, c.stateful, c.disruptive) for c in changes} == {("W", False, True), ("G", False, True)}
