"""patops: the on-call runbook CLI for the Pat data platform.

    scripts/patops --env prod status
    scripts/patops --env prod db failover            # prints the plan; add --yes to do it
    scripts/patops --env local migrations info       # against the local environment (make local)

Everything is discovered from the `/pat/<env>/...` SSM parameters the stacks publish. Mutations print what they
would do and act only with --yes. Exit codes: 0 ok, 1 a check failed (or AWS, the database or the cache refused),
2 usage / precondition (nothing was changed; also missing credentials or a local service that is down),
130 interrupted. Errors print one line on stderr.

This module parses, dispatches and prints; the commands are registered once in scripts/patops_commands.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pat_data.operations import Plan, translate
from scripts.patops_commands import COMMANDS, GROUPS, Command, Context, Result, SessionFactory

ENVS = ("dev", "staging", "prod", "local")
EXIT_INTERRUPTED = 130


def global_options(target: argparse.ArgumentParser, *, repeated: bool) -> None:
    """Accepted before the command and after it (`patops db failover --env prod --yes`): the copy on each command's
    parser must not overwrite with its default what was given before the command."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if repeated else value

    target.add_argument("--env", choices=ENVS, default=default(None), help="dev|staging|prod, or local (make local)")
    target.add_argument("--profile", default=default(None), help="AWS profile (default: the credential chain)")
    target.add_argument("--region", default=default(None), help="AWS region (default: eu-west-1)")
    target.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    target.add_argument("--yes", action="store_true", default=default(False), help="really do it (else a dry run)")


def command_list() -> str:
    width = max(len(command.words) for command in COMMANDS)
    return "commands:\n" + "\n".join(f"  {command.words:<{width}}  {command.summary}" for command in COMMANDS)


def parser() -> argparse.ArgumentParser:
    """The command line, built from the command table: one parser per group, one subparser per command."""
    common = argparse.ArgumentParser(add_help=False)
    global_options(common, repeated=True)
    root = argparse.ArgumentParser(
        prog="patops",
        description=__doc__,
        epilog=command_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    global_options(root, repeated=False)
    groups = root.add_subparsers(dest="group", required=True, metavar="{" + ",".join(GROUPS) + "}")
    commands_of: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for command in COMMANDS:
        if command.name is None:
            target = groups.add_parser(command.group, parents=[common], help=command.summary)
        else:
            if command.group not in commands_of:
                group = groups.add_parser(command.group, parents=[common], help=GROUPS[command.group])
                commands_of[command.group] = group.add_subparsers(dest="command", required=True)
            target = commands_of[command.group].add_parser(
                command.name, parents=[common], help=command.summary, description=command.summary
            )
        for argument in command.arguments:
            argument.add_to(target)
        target.set_defaults(run=command)
    return root


def render(result: Result | object, *, as_json: bool) -> str:
    if isinstance(result, Plan):
        data = {"action": result.action, "applied": result.applied, "steps": result.steps, "result": result.result}
        if as_json:
            return json.dumps(data, default=str, indent=2)
        head = f"{result.action}: {'DONE' if result.applied else 'DRY RUN (nothing changed; add --yes to do it)'}"
        lines = [head, *(f"  - {step}" for step in result.steps)]
        lines += [f"  {key}: {value}" for key, value in result.result.items()]
        return "\n".join(lines)
    return json.dumps(result, default=str, indent=2)


def main(argv: Sequence[str] | None = None, *, session_factory: SessionFactory | None = None) -> int:
    command_line = parser()
    args = command_line.parse_args(argv)
    if args.env is None:
        command_line.error("--env is required (dev, staging, prod or local)")
    command: Command = args.run
    try:
        result = command.handler(Context(args, session_factory=session_factory))
    except KeyboardInterrupt:
        print(
            "patops: interrupted; anything already requested continues in AWS (check: patops status)", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise  # a defect in patops: the traceback is the report
        print(error.line(), file=sys.stderr)
        if error.report is not None:
            print(render(error.report, as_json=args.json))
        return error.exit_code
    print(render(result, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
