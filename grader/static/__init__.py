"""Facts about a submission's code, read with `ast` only (never imported: importing runs student code).

The `async.client` and `leaderboard.pipeline` checks grade on these facts, so the rule throughout is
precision over recall: a false "missing decode_responses" or "sync client" grades a correct student
down. Where the AST cannot tell (a value computed at run time, `**kwargs` from a parameter, a pool
built elsewhere), the student gets the benefit of the doubt:

- an async client whose decode_responses cannot be seen is listed in `decode_responses`, never in
  `missing_decode_responses`;
- a client call whose name resolves to both the async and the sync module (try/except imports) is async;
- only names bound by imports (a module-level alias of one, or a local subclass of a client class) are
  resolved; a client built through a helper this cannot follow is simply not listed;
- a pool found only by name in another module counts only when every assignment of that name is a pool
  whose setting is visible;
- `redis_urls` lists hard-coded addresses only: a URL that is the fallback of an environment read
  (os.getenv("REDIS_URL", "redis://..."), a pydantic settings default) is not hard-coded.
Known limits: scopes are approximated by function (not by block), `Sentinel(...).master_for(...)` is a
client of unknown decoding, and attribute chains through call results (`get_settings().url`) are not followed.

The analysis is split by fact: grader/static/module.py holds one parsed module (imports, assignments,
scopes), clients.py the client and decode_responses facts, env.py REDIS_URL reads and hard-coded
addresses, pipelines.py pipelines and Lua. The files and their trees come from grader/sources.py, the
same ones entry point detection reads.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

from grader.sources import parse, python_files
from grader.static.calls import redis_call_facts, route_facts
from grader.static.clients import Pools, client_facts, evaluate_pools
from grader.static.env import env_call_facts, env_node_facts, settings_classes, url_literal_facts
from grader.static.facts import Finding, StaticFacts
from grader.static.module import ParsedModule, adopt_subclasses
from grader.static.pipelines import method_call_facts, script_string_facts

__all__ = ["Finding", "StaticFacts", "analyze"]

_SORTED_FACTS = (
    "async_clients",
    "sync_clients",
    "decode_responses",
    "missing_decode_responses",
    "pipelines",
    "lua",
    "functions_api",
    "redis_urls",
    "syntax_errors",
)


def analyze(root: Path) -> StaticFacts:
    """Read every .py under root (except virtualenvs, node_modules, hidden folders) and collect facts."""
    root = Path(root)
    facts = StaticFacts()
    modules = _read_modules(root, facts)
    adopt_subclasses(modules)
    pools: Pools = defaultdict(list)
    for mod in modules:
        evaluate_pools(mod)
        for key, found in mod.pools_by_lastname.items():
            pools[key].extend(found)
    settings = settings_classes(modules)
    for mod in modules:
        _collect(mod, facts, pools, settings)
    for name in _SORTED_FACTS:
        setattr(facts, name, sorted(set(getattr(facts, name))))
    return facts


def _read_modules(root: Path, facts: StaticFacts) -> list[ParsedModule]:
    """The submission's modules; files that are not valid Python become syntax_errors findings."""
    modules: list[ParsedModule] = []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        facts.files += 1
        source = parse(path)
        if isinstance(source.error, OSError):
            continue
        if isinstance(source.error, SyntaxError):
            line = source.error.lineno or 1
            src = source.lines[line - 1].strip() if 0 < line <= len(source.lines) else ""
            msg = source.error.msg
            facts.syntax_errors.append(Finding(rel, line, f"{msg}: {src}" if src else msg))
        elif source.error is not None or source.tree is None:  # null bytes, absurd nesting
            facts.syntax_errors.append(Finding(rel, 1, f"cannot parse: {type(source.error).__name__}"))
        else:
            modules.append(ParsedModule(rel, source.tree, source.lines))
    return modules


def _collect(mod: ParsedModule, facts: StaticFacts, pools: Pools, settings: set[str]) -> None:
    facts.libraries |= {m for m in mod.imports if m not in sys.stdlib_module_names and m != "__future__"}
    docstrings = {
        id(n.value)
        for n in mod.nodes
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
    }
    awaited = {id(n.value) for n in mod.nodes if isinstance(n, ast.Await)}
    for node in mod.nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            route_facts(mod, node, facts)
        if isinstance(node, ast.Call):
            redis_call_facts(mod, node, facts, id(node) in awaited)
            client_facts(mod, node, facts, pools)
            method_call_facts(mod, node, facts)
            env_call_facts(node, facts)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            url_literal_facts(mod, node, facts, settings)
            script_string_facts(mod, node, facts)
        else:
            env_node_facts(node, facts, settings)
