"""Layering lint: which room may import which, and who may read the environment or CDK context.

The rooms table in the house style says, for example, that `pat_data` is run-time code without the CDK and that
`stacks/config.py` is the one reader of context and the environment. This check walks the import statements (AST,
stdlib only, nothing is imported or executed) and prints one line per violation:

    path:line: <room> may not import <module> (<reason>)

and exits 1 when there is any. The CDK-free rule follows project-internal imports recursively, package `__init__`
modules included, because `import pat_constructs.settings.cache` runs `pat_constructs/__init__.py` first.

Usage: python -m scripts.lint_layers [ROOT]   (ROOT defaults to the repository this file lives in)
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CDK = ("aws_cdk", "cdk_nag", "constructs", "jsii")
CDK_FREE_REASON = (
    "the environment model and the contract load without the CDK; settings and contract modules stay CDK-free"
)


@dataclass(frozen=True, kw_only=True)
class ImportRule:
    """Modules matching `paths` (globs from the root) may not import any module under `forbidden`."""

    room: str | None  # None: the file's own path names the room (a module with a rule of its own)
    paths: tuple[str, ...]
    forbidden: tuple[str, ...]
    reason: str
    transitive: bool = False  # also follow project-internal imports (and their package __init__s)


@dataclass(frozen=True, kw_only=True)
class ReaderRule:
    """Only `allowed` files (each with its reason) among `paths` may read the environment or CDK context."""

    paths: tuple[str, ...]
    allowed: dict[str, str]
    reason: str


IMPORT_RULES = (
    ImportRule(
        room="pat_data",
        paths=("pat_data/**/*.py",),
        forbidden=(*CDK, "stacks", "pat_constructs", "scripts", "lambdas", "app"),
        reason="run-time library: the Lambda bundle, patops and applications import it without the CDK app",
    ),
    ImportRule(
        room="lambdas",
        paths=("lambdas/**/*.py",),
        forbidden=(*CDK, "stacks", "pat_constructs", "scripts", "app"),
        reason="a handler parses the event and calls pat_data; its bundle holds only pat_data and the handler",
    ),
    ImportRule(
        room="pat_constructs",
        paths=("pat_constructs/**/*.py",),
        forbidden=("stacks", "scripts", "lambdas", "app"),
        reason="a construct takes its values as props; stacks wire it, and handlers are bundled by path",
    ),
    ImportRule(
        room="stacks",
        paths=("stacks/**/*.py",),
        forbidden=("scripts", "lambdas", "app"),
        reason="stacks wire constructs with values from config; tools and handlers sit on the other side",
    ),
    ImportRule(
        room=None,
        paths=(
            "stacks/config.py",
            "stacks/environments/**/*.py",
            "pat_constructs/settings/**/*.py",
            "pat_data/contract.py",
        ),
        forbidden=CDK,
        reason=CDK_FREE_REASON,
        transitive=True,
    ),
)

READER_RULE = ReaderRule(
    paths=("app.py", "stacks/**/*.py", "pat_constructs/**/*.py", "pat_data/**/*.py"),
    allowed={
        "stacks/config.py": "the one reader of context and the environment (house style)",
        "pat_data/local.py": "the local harness finds the developer machine's server binaries (PAT_*_BIN overrides);"
        " it never runs in a deployed process",
    },
    reason="stacks/config.py reads them once; constructs take props and run-time code takes arguments",
)

ENV_READS = {("os", "environ"), ("os", "getenv"), ("os", "environb"), ("os", "getenvb")}
CONTEXT_READS = {"try_get_context", "get_context"}


def default_root() -> Path:
    return Path(__file__).resolve().parents[1]


def matches(module: str, prefixes: tuple[str, ...]) -> str | None:
    """The forbidden prefix `module` falls under (`aws_cdk` covers `aws_cdk.aws_s3`), or None."""
    return next((p for p in prefixes if module == p or module.startswith(p + ".")), None)


def files_of(root: Path, globs: tuple[str, ...]) -> list[Path]:
    return sorted({path for pattern in globs for path in root.glob(pattern) if path.is_file()})


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path, path: Path, tree: ast.Module) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) per import statement, relative imports made absolute.

    `names` are the candidates for submodules: `from pat_constructs import settings` may import a module.
    """
    package = module_name(root, path) if path.name == "__init__.py" else module_name(root, path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [a.name for a in node.names if a.name != "*"]
            if base:
                yield node.lineno, base, tuple(f"{base}.{name}" for name in names)
            else:  # `from .. import x` up to the root: each name is a top-level module
                yield from ((node.lineno, name, ()) for name in names)


def internal_files(root: Path, module: str, names: tuple[str, ...]) -> list[Path]:
    """The project files an import statement runs (packages' __init__s first), in import order, without repeats."""
    found: list[Path] = []
    for candidate in (module, *names):
        found += [f for f in project_files(root, candidate) if f not in found]
    return found


def project_files(root: Path, module: str) -> list[Path]:
    """The project files that importing `module` runs: each package's __init__ along the way, then the module."""
    parts = module.split(".")
    found: list[Path] = []
    for depth in range(1, len(parts) + 1):
        stem = root.joinpath(*parts[:depth])
        if (stem / "__init__.py").is_file():
            found.append(stem / "__init__.py")
        elif stem.with_suffix(".py").is_file():
            found.append(stem.with_suffix(".py"))
            break
        elif not stem.is_dir():
            break
    return found


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def reaches(root: Path, start: Path, forbidden: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """The forbidden module running `start` imports, through project modules, with the `file:line` hops to it."""
    seen = {start}
    queue: list[tuple[Path, list[str]]] = [(start, [])]
    while queue:
        path, chain = queue.pop(0)
        for line, module, names in imports(root, path, parsed(path)):
            hops = [*chain, f"{path.relative_to(root).as_posix()}:{line}"]
            if matches(module, forbidden):
                return module, hops
            for target in internal_files(root, module, names):
                if target not in seen:
                    seen.add(target)
                    queue.append((target, hops))
    return None


Violation = tuple[Path, int, str, str]  # path, line, what (module or read), message


def check_imports(root: Path, rule: ImportRule) -> Iterator[Violation]:
    for path in files_of(root, rule.paths):
        room = rule.room or path.relative_to(root).as_posix()
        if rule.transitive:
            yield from check_own_packages(root, path, room, rule)
        for line, module, names in imports(root, path, parsed(path)):
            if matches(module, rule.forbidden):
                yield path, line, module, f"{room} may not import {module} ({rule.reason})"
            elif rule.transitive:
                for target in internal_files(root, module, names):
                    if found := reaches(root, target, rule.forbidden):
                        reached, hops = found
                        message = f"{room} may not import {reached} (through {' -> '.join(hops)}; {rule.reason})"
                        yield path, line, reached, message
                        break


def check_own_packages(root: Path, path: Path, room: str, rule: ImportRule) -> Iterator[Violation]:
    """A CDK-free module's own package `__init__`s run before it does, so they count as its imports."""
    for package_init in project_files(root, module_name(root, path)):
        if package_init == path:
            continue
        if found := reaches(root, package_init, rule.forbidden):
            reached, hops = found
            yield (
                path,
                1,
                reached,
                f"{room} may not import {reached} (through its package {' -> '.join(hops)}; {rule.reason})",
            )
            return


def env_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Reads of the process environment (`os.environ`, `os.getenv`, `from os import environ`) and of CDK context."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and (node.value.id, node.attr) in ENV_READS:
                yield node.lineno, f"os.{node.attr}"
            elif node.attr in CONTEXT_READS:
                yield node.lineno, f"CDK context ({node.attr})"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if ("os", alias.name) in ENV_READS:
                    yield node.lineno, f"os.{alias.name}"


def check_readers(root: Path, rule: ReaderRule) -> Iterator[Violation]:
    for path in files_of(root, rule.paths):
        name = path.relative_to(root).as_posix()
        if name in rule.allowed:
            continue
        room = name.split("/")[0]
        for line, what in env_reads(parsed(path)):
            yield path, line, what, f"{room} may not read {what} ({rule.reason})"


def violations(root: Path) -> list[str]:
    """One line per violation, sorted by file and line; a line two rules flag for the same module is shown once."""
    found: dict[tuple[Path, int, str], str] = {}
    for path, line, what, message in [v for rule in IMPORT_RULES for v in check_imports(root, rule)] + list(
        check_readers(root, READER_RULE)
    ):
        found.setdefault((path, line, what), message)
    return [
        f"{path.relative_to(root).as_posix()}:{line}: {message}" for (path, line, _), message in sorted(found.items())
    ]


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else default_root()
    problems = violations(root)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
