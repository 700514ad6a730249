"""Every template of a synthesized assembly as one graph: resolve a value to the resource that produces it.

A value in a template names a resource in one of these ways, all followed here, across stacks and regions:

* `{"Ref": X}` / `{"Fn::GetAtt": [X, attr]}` within the stack;
* `{"Fn::ImportValue": name}` (strong cross-stack reference): the stack in the importer's region whose
  `Outputs[*].Export.Name` is `name`, then that output's Value;
* `{"Fn::GetStackOutput": {"StackName", "OutputName", "Region"?}}` (weak reference): that stack's output Value;
* a literal ARN or name (a string, or an `Fn::Join` of strings and pseudo parameters), e.g. an imported key
  `alias/pat/<env>/logs` or `arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:pat-<env>-oncall`: the
  resource of that type whose fixed-name property holds the name, in the ARN's region (see `NAMED_RESOURCES`).

Some resources stand for another one (`PASS_THROUGH`): a secret target attachment's Ref is its secret's ARN, a KMS
alias leads to its target key. Anything that cannot be resolved raises `UnresolvedReferenceError`: a caller that must
see every producer never skips one silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

PSEUDO_PREFIX = "AWS::"

# Resource types whose Ref/ARN stands for another resource: type -> the property naming it.
PASS_THROUGH = {
    "AWS::SecretsManager::SecretTargetAttachment": "SecretId",
    "AWS::KMS::Alias": "TargetKeyId",
}


@dataclass(frozen=True)
class NamedResource:
    """How a literal ARN (`arn:<partition>:<service>:<region>:<account>:<resource>`) or bare name maps to a
    resource of this app: `prefix` is stripped from the ARN's resource part, the rest must equal `name_property`."""

    resource_type: str
    name_property: str
    prefix: str = ""


# ARN service -> the fixed-name resources it can name. Extend when a template names another type by a literal.
NAMED_RESOURCES: dict[str, tuple[NamedResource, ...]] = {
    "kms": (NamedResource("AWS::KMS::Alias", "AliasName"),),  # "alias/..." is both the ARN's tail and the name
    "sns": (NamedResource("AWS::SNS::Topic", "TopicName"),),
    "sqs": (NamedResource("AWS::SQS::Queue", "QueueName"),),
    "logs": (NamedResource("AWS::Logs::LogGroup", "LogGroupName", prefix="log-group:"),),
    "s3": (NamedResource("AWS::S3::Bucket", "BucketName"),),
}

_PSEUDO = re.compile(r"\$\{(AWS::[A-Za-z]+)\}")
_FIELD = r"(\$\{[^}]*\}|[^:]*)"
_ARN = re.compile(rf"arn:{_FIELD}:{_FIELD}:{_FIELD}:{_FIELD}:(.*)", re.DOTALL)


# Literal domain names that name a resource: (pattern with a `name` and optional `region` group, type, property).
DOMAIN_NAMES = (
    (
        re.compile(
            r"(?P<name>[^/]+?)\.s3(?:[.-](?P<region>[a-z]{2}-[a-z]+-\d))?\.(?:amazonaws\.com|\$\{AWS::URLSuffix\})"
        ),
        "AWS::S3::Bucket",
        "BucketName",
    ),
)


def split_arn(text: str) -> tuple[str, str, str, str, str] | None:
    """(partition, service, region, account, resource) of an ARN whose fields may be `${AWS::...}` placeholders."""
    match = _ARN.fullmatch(text)
    return None if match is None else match.groups()  # type: ignore[return-value]


class UnresolvedReferenceError(LookupError):
    """A value whose producer is not a resource of the assembly (or is ambiguous)."""


@dataclass(frozen=True, order=True)
class ResourceRef:
    stack: str
    logical_id: str

    def __str__(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass
class StackTemplate:
    name: str
    region: str | None
    account: str | None
    template: dict[str, Any]
    dependencies: tuple[str, ...] = ()

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.get("Resources", {})
        return resources

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        outputs: dict[str, dict[str, Any]] = self.template.get("Outputs", {})
        return outputs

    def pseudo(self, name: str) -> str | None:
        """The concrete value of a pseudo parameter, when the stack's environment fixes it."""
        if name == "AWS::Region":
            return self.region
        if name == "AWS::AccountId":
            return self.account
        if name == "AWS::StackName":
            return self.name
        return None


def _concrete(value: str | None) -> str | None:
    return None if value is None or value.startswith("unknown-") else value


@dataclass
class TemplateGraph:
    stacks: dict[str, StackTemplate]
    _exports: dict[tuple[str | None, str], tuple[str, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for stack in self.stacks.values():
            for output_name, output in stack.outputs.items():
                export = output.get("Export", {}).get("Name")
                if export is None:
                    continue
                if not isinstance(export, str):
                    raise UnresolvedReferenceError(
                        f"{stack.name}: export name of {output_name} is not a literal: {export}"
                    )
                key = (stack.region, export)
                if key in self._exports:
                    raise UnresolvedReferenceError(f"export {export!r} defined twice in {stack.region}")
                self._exports[key] = (stack.name, output_name)

    @classmethod
    def from_assembly(cls, assembly: Any) -> TemplateGraph:
        """Every stack of a `cx_api.CloudAssembly` (nested assemblies are not used by this app)."""
        stacks = {}
        for artifact in assembly.stacks:
            environment = artifact.environment
            stacks[artifact.stack_name] = StackTemplate(
                name=artifact.stack_name,
                region=_concrete(environment.region),
                account=_concrete(environment.account),
                template=artifact.template,
                dependencies=tuple(d.id for d in artifact.dependencies),
            )
        return cls(stacks)

    # ---- lookup ----

    def stack(self, name: str) -> StackTemplate:
        try:
            return self.stacks[name]
        except KeyError:
            raise UnresolvedReferenceError(f"no stack {name!r} in the assembly") from None

    def resource(self, ref: ResourceRef) -> dict[str, Any]:
        try:
            return self.stack(ref.stack).resources[ref.logical_id]
        except KeyError:
            raise UnresolvedReferenceError(f"no resource {ref}") from None

    def type_of(self, ref: ResourceRef) -> str:
        resource_type: str = self.resource(ref)["Type"]
        return resource_type

    def resources(self, resource_type: str | None = None) -> Iterator[tuple[ResourceRef, dict[str, Any]]]:
        for stack in self.stacks.values():
            for logical_id, resource in stack.resources.items():
                if resource_type is None or resource["Type"] == resource_type:
                    yield ResourceRef(stack.name, logical_id), resource

    # ---- rendering ----

    def render(self, stack_name: str, value: Any, *, concrete: bool = True) -> str:
        """A value made only of strings, pseudo parameters and Fn::Join/Fn::Sub as one string; pseudo parameters
        become the stack's concrete values when known (`concrete`), otherwise `${AWS::Region}` and the like."""
        stack = self.stack(stack_name)

        def pseudo(name: str) -> str:
            known = stack.pseudo(name) if concrete else None
            return known if known is not None else "${" + name + "}"

        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and isinstance(argument, str) and argument.startswith(PSEUDO_PREFIX):
                return pseudo(argument)
            if function == "Fn::Join":
                delimiter, parts = argument
                return str(delimiter).join(self.render(stack_name, part, concrete=concrete) for part in parts)
            if function == "Fn::Sub" and isinstance(argument, str):
                if "${" in _PSEUDO.sub("", argument):
                    raise UnresolvedReferenceError(f"{stack_name}: Fn::Sub with resource variables: {argument}")
                return _PSEUDO.sub(lambda m: pseudo(m.group(1)), argument)
        raise UnresolvedReferenceError(f"{stack_name}: not a literal: {json.dumps(value)[:200]}")

    # ---- resolution ----

    def resolve(self, stack_name: str, value: Any, *, follow: bool = True) -> ResourceRef:
        """The resource that produces `value` as seen from `stack_name`. With `follow`, a pass-through resource
        (secret attachment, key alias) resolves to the resource it stands for."""
        ref = self._resolve(stack_name, value, seen=frozenset())
        while follow and self.type_of(ref) in PASS_THROUGH:
            ref = self._target_of(ref)
        return ref

    def references(self, stack_name: str, value: Any) -> list[ResourceRef]:
        """Every resource a value names anywhere inside it (e.g. the secret in
        `Fn::Join [<secret arn>, ":password::"]`), each resolved; a literal part that names nothing is skipped,
        since text around a reference (":password::") is not a reference."""
        if self.is_reference(value):
            return [self.resolve(stack_name, value)]
        found: list[ResourceRef] = []
        if isinstance(value, dict) and len(value) == 1 and "Fn::Join" in value:
            parts = value["Fn::Join"][1]
            if not any(self._contains_reference(p) for p in parts):
                return [self.resolve(stack_name, value)]
            for part in parts:
                found.extend(self.references(stack_name, part))
        elif isinstance(value, list):
            for item in value:
                found.extend(self.references(stack_name, item))
        elif isinstance(value, str) and (value.startswith("arn:") or value.startswith("alias/")):
            found.append(self.resolve(stack_name, value))
        return found

    def literal_service(self, stack_name: str, value: Any) -> str | None:
        """The service a literal names: `sns` for `arn:aws:sns:...`, `s3` for a bucket domain name, "" for any other
        literal text (an e-mail address, a custom origin); None when the value is not a literal (a reference)."""
        try:
            text = self.render(stack_name, value)
        except UnresolvedReferenceError:
            return None
        arn = split_arn(text)
        if arn is not None:
            return arn[1]
        if text.startswith("alias/"):
            return "kms"
        if any(pattern.fullmatch(text) for pattern, _, _ in DOMAIN_NAMES):
            return "s3"
        return ""

    @staticmethod
    def is_reference(value: Any) -> bool:
        if not (isinstance(value, dict) and len(value) == 1):
            return False
        ((function, argument),) = value.items()
        if function == "Ref":
            return not (isinstance(argument, str) and argument.startswith(PSEUDO_PREFIX))
        return function in {"Fn::GetAtt", "Fn::ImportValue", "Fn::GetStackOutput"}

    def _contains_reference(self, value: Any) -> bool:
        if self.is_reference(value):
            return True
        if isinstance(value, dict):
            return any(self._contains_reference(v) for v in value.values())
        if isinstance(value, list):
            return any(self._contains_reference(v) for v in value)
        return False

    def _target_of(self, ref: ResourceRef) -> ResourceRef:
        prop = PASS_THROUGH[self.type_of(ref)]
        target = self.resource(ref).get("Properties", {}).get(prop)
        if target is None:
            raise UnresolvedReferenceError(f"{ref}: no {prop}")
        return self._resolve(ref.stack, target, seen=frozenset())

    def _resolve(self, stack_name: str, value: Any, *, seen: frozenset[tuple[str, str]]) -> ResourceRef:
        stack = self.stack(stack_name)
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and isinstance(argument, str) and not argument.startswith(PSEUDO_PREFIX):
                if argument not in stack.resources:
                    raise UnresolvedReferenceError(f"{stack_name}: Ref {argument} is not a resource (a parameter?)")
                return ResourceRef(stack_name, argument)
            if function == "Fn::GetAtt":
                logical_id = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
                if logical_id not in stack.resources:
                    raise UnresolvedReferenceError(f"{stack_name}: GetAtt of unknown resource {logical_id}")
                return ResourceRef(stack_name, logical_id)
            if function == "Fn::ImportValue":
                if not isinstance(argument, str):
                    raise UnresolvedReferenceError(f"{stack_name}: ImportValue of a computed name: {argument}")
                producer = self._exports.get((stack.region, argument))
                if producer is None:
                    raise UnresolvedReferenceError(f"{stack_name}: no stack in {stack.region} exports {argument!r}")
                return self._output(*producer, seen=seen)
            if function == "Fn::GetStackOutput":
                producer_name = argument["StackName"]
                producer_stack = self.stack(producer_name)
                region = argument.get("Region")
                if region is not None and producer_stack.region is not None and region != producer_stack.region:
                    raise UnresolvedReferenceError(
                        f"{stack_name}: {producer_name} is in {producer_stack.region}, not {region}"
                    )
                return self._output(producer_name, argument["OutputName"], seen=seen)
        return self._resolve_literal(stack_name, self.render(stack_name, value))

    def _output(self, stack_name: str, output_name: str, *, seen: frozenset[tuple[str, str]]) -> ResourceRef:
        if (stack_name, output_name) in seen:
            raise UnresolvedReferenceError(f"output cycle through {stack_name}.{output_name}")
        try:
            output = self.stack(stack_name).outputs[output_name]
        except KeyError:
            raise UnresolvedReferenceError(f"{stack_name} has no output {output_name}") from None
        return self._resolve(stack_name, output["Value"], seen=seen | {(stack_name, output_name)})

    def _resolve_literal(self, stack_name: str, text: str) -> ResourceRef:
        """A literal ARN, or a bare `alias/...` name, looked up by fixed name in the ARN's region."""
        region = self.stack(stack_name).region
        for pattern, resource_type, name_property in DOMAIN_NAMES:
            match = pattern.fullmatch(text)
            if match is not None:
                named = NamedResource(resource_type, name_property)
                return self._find_named(stack_name, text, named, match["name"], match["region"] or region)
        if text.startswith("alias/"):
            service, resource = "kms", text
        else:
            arn = split_arn(text)
            if arn is None:
                raise UnresolvedReferenceError(f"{stack_name}: not a reference nor an ARN: {text!r}")
            service, region, resource = arn[1], arn[2] or region, arn[4]
            if region is None or "${" in region:
                raise UnresolvedReferenceError(f"{stack_name}: ARN with an unknown region: {text!r}")
        rows = [named for named in NAMED_RESOURCES.get(service, ()) if resource.startswith(named.prefix)]
        if len(rows) != 1:
            raise UnresolvedReferenceError(f"{stack_name}: no fixed-name resource type for {text!r} (NAMED_RESOURCES)")
        return self._find_named(stack_name, text, rows[0], resource.removeprefix(rows[0].prefix), region)

    def _find_named(
        self, stack_name: str, text: str, named: NamedResource, name: str, region: str | None
    ) -> ResourceRef:
        """The one resource of `named`'s type in `region` whose fixed-name property renders to `name`."""
        matches: list[ResourceRef] = []
        for candidate in self.stacks.values():
            if candidate.region != region:
                continue
            for logical_id, resource_def in candidate.resources.items():
                if resource_def["Type"] != named.resource_type:
                    continue
                held = resource_def.get("Properties", {}).get(named.name_property)
                if held is not None and self._renders_to(candidate.name, held, name):
                    matches.append(ResourceRef(candidate.name, logical_id))
        if len(matches) != 1:
            what = "nothing" if not matches else ", ".join(map(str, matches))
            raise UnresolvedReferenceError(f"{stack_name}: {text!r} names {what} in {region}")
        return matches[0]

    def _renders_to(self, stack_name: str, value: Any, expected: str) -> bool:
        try:
            return self.render(stack_name, value) == expected
        except UnresolvedReferenceError:
            return False


def at_path(properties: Any, path: str) -> Iterable[Any]:
    """Every value at a dotted property path; `*` steps into each item of a list."""
    values = [properties]
    for step in path.split("."):
        following: list[Any] = []
        for value in values:
            if step == "*":
                if isinstance(value, list):
                    following.extend(value)
            elif isinstance(value, dict) and step in value:
                following.append(value[step])
        values = following
    return values
