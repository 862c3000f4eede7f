"""Environment facts: does the code read REDIS_URL, and which Redis addresses does it hard-code.

Lenient on purpose: a URL that is the fallback of an environment read (os.getenv("REDIS_URL", "redis://..."),
a pydantic settings default) is not hard-coded, and any visible read of REDIS_URL counts.
"""

from __future__ import annotations

import ast
import re

from grader.static.facts import StaticFacts
from grader.static.module import ParsedModule

_REDIS_URL_RE = re.compile(r"^\s*rediss?://", re.IGNORECASE)
_ENV_NAME = "REDIS_URL"
_ENV_VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Calls whose REDIS_URL argument is a message, not a read (print("REDIS_URL"), log.info(...)).
_NOT_READERS = {"print", "info", "debug", "warning", "error", "exception", "critical", "log", "write"}


def env_call_facts(call: ast.Call, facts: StaticFacts) -> None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in _NOT_READERS and reads_env(call):
        facts.reads_redis_url_env = True


def env_node_facts(node: ast.AST, facts: StaticFacts, settings: set[str]) -> None:
    """REDIS_URL read without a call: os.environ["REDIS_URL"], "REDIS_URL" in os.environ, a settings class."""
    subscript = isinstance(node, ast.Subscript) and is_env_name(node.slice)
    membership = isinstance(node, ast.Compare) and is_env_name(node.left)
    if (
        subscript
        or membership
        or (isinstance(node, ast.ClassDef) and node.name in settings and settings_reads_url(node))
    ):
        facts.reads_redis_url_env = True


def url_literal_facts(mod: ParsedModule, node: ast.Constant, facts: StaticFacts, settings: set[str]) -> None:
    if _REDIS_URL_RE.match(node.value) and not configured_default(mod, node, settings):
        facts.redis_urls.append(mod.finding(node))


def configured_default(mod: ParsedModule, node: ast.Constant, settings: set[str]) -> bool:
    """A URL literal the environment overrides is a fallback, not a hard-coded address.

    os.getenv("REDIS_URL", "redis://localhost"), environ.get(...), config("X", default=...), a field
    default in a pydantic settings class, and the literal parts of f"redis://{host}:{port}".
    """
    parent = mod.parent.get(node)
    if isinstance(parent, ast.JoinedStr):
        return True
    if isinstance(parent, ast.keyword):
        return parent.arg == "default"
    if isinstance(parent, ast.Call) and node in parent.args[1:]:
        first = parent.args[0]
        return isinstance(first, ast.Constant) and isinstance(first.value, str) and bool(_ENV_VAR_RE.match(first.value))
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        owner = mod.parent.get(parent)
        return isinstance(owner, ast.ClassDef) and owner.name in settings
    return False


def is_env_name(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) and expr.value == _ENV_NAME


def reads_env(call: ast.Call) -> bool:
    # os.getenv("REDIS_URL"), environ.get(...), config("REDIS_URL"), env.str(...), AliasChoices(...),
    # and Field(alias=/validation_alias=/env="REDIS_URL"). Lenient on purpose: "False" here is the
    # direction that would count against the student.
    if any(is_env_name(a) for a in call.args):
        return True
    return any(k.arg in ("alias", "validation_alias", "env") and is_env_name(k.value) for k in call.keywords)


# --- pydantic settings --------------------------------------------------------------------------


def settings_classes(modules: list[ParsedModule]) -> set[str]:
    """Names of classes deriving (directly or through local classes) from a pydantic BaseSettings."""
    classes: list[tuple[str, list[str]]] = []
    for mod in modules:
        for node in mod.nodes:
            if isinstance(node, ast.ClassDef):
                bases = []
                for b in node.bases:
                    if isinstance(b, (ast.Name, ast.Attribute)):
                        bases.append(b.id if isinstance(b, ast.Name) else b.attr)
                classes.append((node.name, bases))
    found = {"BaseSettings"}
    changed = True
    while changed:
        changed = False
        for name, bases in classes:
            if name not in found and any(b in found for b in bases):
                found.add(name)
                changed = True
    found.discard("BaseSettings")
    return found


def settings_reads_url(cls: ast.ClassDef) -> bool:
    """A `redis_url` field reads REDIS_URL unless the class sets a non-empty env_prefix."""
    if not any(
        isinstance(n, (ast.AnnAssign, ast.Assign))
        and any(
            isinstance(t, ast.Name) and t.id.lower() == "redis_url"
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        )
        for n in cls.body
    ):
        return False
    return not _has_env_prefix(cls)


def _has_env_prefix(cls: ast.ClassDef) -> bool:
    def nonempty(v: ast.expr | None) -> bool:
        return isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value != ""

    if any(k.arg == "env_prefix" and nonempty(k.value) for k in cls.keywords):
        return True
    for node in cls.body:
        if isinstance(node, ast.ClassDef) and node.name == "Config":  # pydantic v1
            for sub in node.body:
                if isinstance(sub, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "env_prefix" for t in sub.targets
                ):
                    return nonempty(sub.value)
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if value is None or not any(isinstance(t, ast.Name) and t.id == "model_config" for t in targets):
            continue
        if isinstance(value, ast.Call) and any(k.arg == "env_prefix" and nonempty(k.value) for k in value.keywords):
            return True
        if isinstance(value, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "env_prefix" and nonempty(v)
            for k, v in zip(value.keys, value.values)
        ):
            return True
    return False
