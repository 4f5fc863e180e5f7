"""Reading policy files: YAML with line numbers, schema validation, cross-checks, selection.

Invariants:

- Every problem in a file is reported as a :class:`Problem` naming the file and, whenever the
  YAML holds the offending node, its 1-based line. :func:`load_policy_file` raises
  :class:`~ledger.errors.PolicyParseError` carrying the first problem; :func:`lint_paths`
  collects them all.
- Duplicate mapping keys are an error (plain YAML would keep the last one silently).
- A loaded :class:`PolicySet` has passed the schema and the semantic checks: terms and marketplace
  versions tile time without overlap or gap, rules cite documents of their own version, rule and
  version ids are unique, exceptions point at prohibitions, and no provider slug is claimed by two
  files of the same layer.
- The digest of a version is SHA-256 over the RFC 8785 bytes of its validated content, so it does
  not change with YAML formatting, comments or anchors, and does change with any rule or date.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ledger._resources import policies_dir
from ledger.crypto.canonical import canonical_json, sha256_hex
from ledger.errors import PolicyParseError
from ledger.policy.schema import PolicyFile, PolicyVersion

__all__ = [
    "PolicySet",
    "Problem",
    "default_policies",
    "lint_paths",
    "load_policies",
    "load_policy_file",
    "version_digest",
]

_Path = tuple[str | int, ...]
_LICENCE_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


# libyaml's parser when PyYAML was built with it (the wheels are): about ten times faster than
# the pure-Python one, which made loading the shipped policies about a second of CPU. The
# constructor and resolver are the same Python classes either way, so the data is the same.
_SafeBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeBase):  # type: ignore[misc]
    """SafeLoader whose composed node tree we keep, to map data paths back to lines."""


def _compose(text: str, name: str) -> tuple[dict[_Path, int], Any]:
    """The line of every data path, and the data built from the same parse.

    Lines are mapped before the data is built: building merges ``<<`` keys into the mapping
    nodes in place, after which an overridden merged key would read as a duplicate.
    """
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _FileProblemsError([Problem(name, None, "the file is empty")])
        lines = _line_map(node, name)
        return lines, loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise _FileProblemsError([Problem(name, line, f"not valid YAML: {problem}")]) from exc
    finally:
        loader.dispose()


class _FileProblemsError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0] if problems else "policy file problem")
        self.problems = problems


def _line_map(node: yaml.Node, name: str) -> dict[_Path, int]:
    """Map every data path (keys and list indices) to the line of its node, refusing dup keys."""
    lines: dict[_Path, int] = {}
    duplicates: list[Problem] = []

    def walk(current: yaml.Node, path: _Path) -> None:
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in current.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                if key == "<<":
                    # Merge key: the merged mapping's entries belong to this mapping.
                    merged = (
                        value_node.value
                        if isinstance(value_node, yaml.SequenceNode)
                        else [value_node]
                    )
                    for sub in merged:
                        if isinstance(sub, yaml.MappingNode):
                            for sub_key, sub_value in sub.value:
                                walk(sub_value, (*path, str(sub_key.value)))
                    continue
                if key in seen:
                    duplicates.append(
                        Problem(
                            name,
                            key_node.start_mark.line + 1,
                            f"duplicate key {key!r} (first at line {seen[key]})",
                        )
                    )
                seen[key] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, (*path, index))

    walk(node, ())
    if duplicates:
        raise _FileProblemsError(duplicates)
    return lines


def _nearest_line(lines: dict[_Path, int], loc: Sequence[str | int]) -> int | None:
    path = tuple(loc)
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        path = path[:-1]


def _parse(text: str, name: str) -> tuple[PolicyFile, dict[_Path, int]]:
    lines, data = _compose(text, name)
    if not isinstance(data, dict):
        raise _FileProblemsError([Problem(name, 1, "a policy file is a YAML mapping")])
    # Top-level "x-" keys only hold YAML anchors for reuse (as in Compose files); drop them.
    data = {key: value for key, value in data.items() if not str(key).startswith("x-")}
    try:
        policy = PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [part for part in error["loc"] if isinstance(part, str | int)]
            # pydantic appends the union branch name ("str", "list[str]") to some locations.
            message = error["msg"].removeprefix("Value error, ")
            hint = re.match(r"^\[([\w.]+)\] ", message)
            if hint:
                # A whole-file check names the offending key path in brackets.
                message = message[hint.end() :]
                loc += [int(p) if p.isdigit() else p for p in hint.group(1).split(".")]
            line = _nearest_line(lines, loc)
            where = ".".join(str(part) for part in loc) or "(file)"
            problems.append(Problem(name, line, f"{where}: {message}"))
        raise _FileProblemsError(problems) from exc
    return policy, lines


def _semantic_problems(policy: PolicyFile, lines: dict[_Path, int], name: str) -> list[Problem]:
    problems: list[Problem] = []

    def at(*path: str | int) -> int | None:
        return _nearest_line(lines, path)

    stem = Path(name).stem
    if stem != policy.id:
        problems.append(Problem(name, at("id"), f"policy id {policy.id!r} differs from file name"))
    version_ids: dict[str, int] = {}
    for v_index, version in enumerate(policy.versions):
        if version.id in version_ids:
            problems.append(
                Problem(name, at("versions", v_index, "id"), f"duplicate version id {version.id!r}")
            )
        version_ids[version.id] = v_index
        documents = {doc.id for doc in version.documents}
        if len(documents) != len(version.documents):
            problems.append(
                Problem(name, at("versions", v_index, "documents"), "duplicate document ids")
            )
        rule_ids: set[str] = set()
        prohibitions = {rule.id for rule in version.rules if rule.type == "prohibition"}
        for r_index, rule in enumerate(version.rules):
            here = ("versions", v_index, "rules", r_index)
            if rule.id in rule_ids:
                problems.append(
                    Problem(name, at(*here, "id"), f"duplicate rule id {rule.id!r} in version")
                )
            rule_ids.add(rule.id)
            if rule.source not in documents:
                problems.append(
                    Problem(
                        name,
                        at(*here, "source"),
                        f"rule {rule.id!r} cites no source: {rule.source!r} is not a document "
                        f"of version {version.id!r}",
                    )
                )
            for target in rule.exception_to:
                if target not in prohibitions:
                    problems.append(
                        Problem(
                            name,
                            at(*here, "exception_to"),
                            f"rule {rule.id!r} is an exception to {target!r}, which is not a "
                            "prohibition of this version",
                        )
                    )
    if policy.layer != "licence":
        problems.extend(_timeline_problems(policy, lines, name))
    if policy.pass_through is not None:
        for index, route in enumerate(policy.pass_through.routes):
            if route.policy == policy.id:
                problems.append(
                    Problem(
                        name,
                        at("pass_through", "routes", index, "policy"),
                        "a pass-through route points at its own policy",
                    )
                )
    return problems


def _timeline_problems(policy: PolicyFile, lines: dict[_Path, int], name: str) -> list[Problem]:
    """Terms are picked by time, so their versions must tile time: no overlap, no gap."""
    problems: list[Problem] = []
    order = sorted(range(len(policy.versions)), key=lambda i: policy.versions[i].effective_from)
    for before_i, after_i in itertools.pairwise(order):
        before, after = policy.versions[before_i], policy.versions[after_i]
        line = _nearest_line(lines, ("versions", after_i, "effective_from"))
        if before.effective_until is None:
            problems.append(
                Problem(
                    name,
                    _nearest_line(lines, ("versions", before_i, "id")),
                    f"version {before.id!r} has no effective_until but {after.id!r} follows it",
                )
            )
            continue
        gap = (after.effective_from - before.effective_until).days
        if gap <= 0:
            problems.append(
                Problem(
                    name,
                    line,
                    f"versions {before.id!r} and {after.id!r} overlap "
                    f"({before.effective_until} >= {after.effective_from})",
                )
            )
        elif gap > 1:
            problems.append(
                Problem(
                    name,
                    line,
                    f"gap between versions {before.id!r} (until {before.effective_until}) and "
                    f"{after.id!r} (from {after.effective_from})",
                )
            )
    return problems


def version_digest(version: PolicyVersion) -> str:
    """SHA-256 hex of the RFC 8785 bytes of a validated version (formatting-independent)."""
    return sha256_hex(canonical_json(version.model_dump(mode="json")))


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A validated collection of policy files, indexed for evaluation."""

    policies: tuple[PolicyFile, ...]
    sources: tuple[str, ...] = field(default=())
    _digests: dict[tuple[str, str], str] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _licences: dict[str, tuple[PolicyFile, PolicyVersion] | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        ids = [policy.id for policy in self.policies]
        duplicates = sorted({pid for pid in ids if ids.count(pid) > 1})
        if duplicates:
            raise PolicyParseError(f"policy ids loaded twice: {', '.join(duplicates)}")
        # Digests are computed once: evaluation runs per ledger entry and must stay cheap.
        for policy in self.policies:
            for version in policy.versions:
                self._digests[(policy.id, version.id)] = version_digest(version)

    def digest(self, policy: PolicyFile, version: PolicyVersion) -> str:
        """The digest of a version of this set (see :func:`version_digest`)."""
        cached = self._digests.get((policy.id, version.id))
        return cached if cached is not None else version_digest(version)

    def get(self, policy_id: str) -> PolicyFile | None:
        """The policy with id ``policy_id``, or None."""
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        return None

    def for_provider(self, provider: str) -> list[PolicyFile]:
        """Terms and marketplace policies governing provider slug ``provider``."""
        return [p for p in self.policies if p.layer != "licence" and provider in p.providers]

    def licences(self) -> Iterator[PolicyFile]:
        """The licence-layer policies."""
        return (p for p in self.policies if p.layer == "licence")

    def licence_for(self, model: str) -> tuple[PolicyFile, PolicyVersion] | None:
        """The licence version whose model pattern best matches ``model``.

        The longest matched text wins, so a pattern naming ``r1-distill-llama-8b`` beats one
        naming ``deepseek-r1``. Two different versions matching equally long is ambiguous and
        raises :class:`~ledger.errors.PolicyParseError`.
        """
        needle = model.lower()
        if needle in self._licences:
            return self._licences[needle]
        best: list[tuple[int, PolicyFile, PolicyVersion]] = []
        for policy in self.licences():
            for version in policy.versions:
                length = max(
                    (len(m.group(0)) for p in version.models if (m := re.search(p, needle))),
                    default=-1,
                )
                if length < 0:
                    continue
                if not best or length > best[0][0]:
                    best = [(length, policy, version)]
                elif length == best[0][0]:
                    best.append((length, policy, version))
        if len({(p.id, v.id) for _, p, v in best}) > 1:
            names = ", ".join(f"{p.id}/{v.id}" for _, p, v in best)
            raise PolicyParseError(f"model {model!r} matches several licences equally: {names}")
        found = (best[0][1], best[0][2]) if best else None
        # Bounded so that a stream of distinct model ids cannot grow the cache without limit.
        if len(self._licences) < _LICENCE_CACHE_SIZE:
            self._licences[needle] = found
        return found


def load_policy_file(path: Path) -> PolicyFile:
    """Load and check one policy file.

    Raises:
        PolicyParseError: the file does not parse or validate; the message names file and line.
    """
    policy, problems = _check_file(path)
    if problems or policy is None:
        raise PolicyParseError(str(problems[0]))
    return policy


def _check_file(path: Path) -> tuple[PolicyFile | None, list[Problem]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, None, f"cannot read: {exc}")]
    try:
        policy, lines = _parse(text, name)
    except _FileProblemsError as exc:
        return None, exc.problems
    return policy, _semantic_problems(policy, lines, name)


def _expand(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")))
        else:
            files.append(path)
    return files


def _cross_file_problems(loaded: list[tuple[Path, PolicyFile]]) -> list[Problem]:
    problems: list[Problem] = []
    claimed: dict[tuple[str, str], Path] = {}
    ids: dict[str, Path] = {}
    for path, policy in loaded:
        if policy.id in ids:
            problems.append(
                Problem(str(path), None, f"policy id {policy.id!r} also used by {ids[policy.id]}")
            )
        ids[policy.id] = path
        for provider in policy.providers:
            key = (policy.layer, provider)
            if key in claimed:
                problems.append(
                    Problem(
                        str(path),
                        None,
                        f"provider {provider!r} already has {policy.layer} policy in "
                        f"{claimed[key]}",
                    )
                )
            claimed[key] = path
    known = {policy.id for _, policy in loaded}
    for path, policy in loaded:
        if policy.pass_through is None:
            continue
        for route in policy.pass_through.routes:
            if route.policy not in known:
                problems.append(
                    Problem(str(path), None, f"pass-through route names unknown {route.policy!r}")
                )
    return problems


def lint_paths(paths: Sequence[Path] | None = None) -> tuple[list[Path], list[Problem]]:
    """Check policy files (default: the shipped ones) and return (files checked, problems).

    Directories expand to their ``*.yaml`` files. Cross-file checks (duplicate ids, a provider
    claimed twice, pass-through routes to unknown policies) run over everything given together.
    """
    files, problems, _ = _lint(paths)
    return files, problems


def _lint(
    paths: Sequence[Path] | None,
) -> tuple[list[Path], list[Problem], list[tuple[Path, PolicyFile]]]:
    files = _expand(paths if paths else [policies_dir()])
    problems: list[Problem] = []
    loaded: list[tuple[Path, PolicyFile]] = []
    for path in files:
        policy, file_problems = _check_file(path)
        problems.extend(file_problems)
        if policy is not None and not file_problems:
            loaded.append((path, policy))
    if len(loaded) == len(files):
        problems.extend(_cross_file_problems(loaded))
    return files, problems, loaded


def load_policies(paths: Sequence[Path] | Path | None = None) -> PolicySet:
    """Load and check policy files into a :class:`PolicySet` (default: the shipped policies).

    Raises:
        PolicyParseError: any file fails; the message names the first problem's file and line.
    """
    if isinstance(paths, Path):
        paths = [paths]
    files, problems, loaded = _lint(paths)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PolicyParseError(f"{problems[0]}{more}")
    if not files:
        raise PolicyParseError("no policy files found")
    return PolicySet(
        policies=tuple(policy for _, policy in loaded),
        sources=tuple(str(path) for path, _ in loaded),
    )


@functools.lru_cache(maxsize=1)
def default_policies() -> PolicySet:
    """The shipped policies, loaded once per process."""
    return load_policies()
