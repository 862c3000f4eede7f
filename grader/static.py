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
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

SKIP_DIRS = frozenset({".venv", "venv", "node_modules", "site-packages", "__pycache__"})
MAX_FILE_BYTES = 2 * 1024 * 1024  # larger .py files are generated data, not code worth reading


@dataclass(frozen=True, order=True)
class Finding:
    file: str  # path relative to the analyzed root, posix separators
    line: int  # 1-based
    text: str  # the source line, stripped (for syntax errors: "<message>: <source line>")


@dataclass
class StaticFacts:
    files: int = 0  # python files read
    syntax_errors: list[Finding] = field(default_factory=list)
    async_clients: list[Finding] = field(default_factory=list)
    sync_clients: list[Finding] = field(default_factory=list)
    # Async clients built with decode_responses=True, or with a value this analysis cannot see
    # (benefit of the doubt); the line is the pool's when a ConnectionPool decides it.
    decode_responses: list[Finding] = field(default_factory=list)
    missing_decode_responses: list[Finding] = field(default_factory=list)
    pipelines: list[Finding] = field(default_factory=list)
    lua: list[Finding] = field(default_factory=list)
    functions_api: list[Finding] = field(default_factory=list)
    # Hard-coded addresses: redis:// literals (not env fallbacks, not f-strings, not docstrings) and client/pool
    # calls given a literal host or port.
    redis_urls: list[Finding] = field(default_factory=list)
    # os.getenv / os.environ[...] / environ.get / config("REDIS_URL"), Field(alias="REDIS_URL"), or a
    # pydantic settings field named redis_url without an env_prefix.
    reads_redis_url_env: bool = False
    # Top-level non-stdlib modules imported absolutely (the submission's own packages, e.g. `app`, too).
    libraries: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, for check evidence."""
        out: dict[str, object] = {}
        for name, value in vars(self).items():
            if isinstance(value, list):
                out[name] = [vars(f) for f in value]
            elif isinstance(value, set):
                out[name] = sorted(value)
            else:
                out[name] = value
        return out


def analyze(root: Path) -> StaticFacts:
    """Read every .py under root (except virtualenvs, node_modules, hidden folders) and collect facts."""
    root = Path(root)
    facts = StaticFacts()
    modules: list[_Module] = []
    for path in _python_files(root):
        rel = path.relative_to(root).as_posix()
        facts.files += 1
        try:
            data = path.read_bytes()
        except OSError:
            continue
        lines = data.decode("utf-8", errors="replace").splitlines()
        try:
            tree = ast.parse(data, filename=rel)
        except SyntaxError as exc:
            line = exc.lineno or 1
            src = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            facts.syntax_errors.append(Finding(rel, line, f"{exc.msg}: {src}" if src else exc.msg))
            continue
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            facts.syntax_errors.append(Finding(rel, 1, f"cannot parse: {type(exc).__name__}"))
            continue
        modules.append(_Module(rel, tree, lines))

    _adopt_subclasses(modules)
    pools: dict[str, list[_Pool]] = defaultdict(list)  # last name of the assigned target -> pools
    for mod in modules:
        mod.evaluate_pools()
        for key, found in mod.pools_by_lastname.items():
            pools[key].extend(found)
    settings = _settings_classes(modules)
    for mod in modules:
        mod.collect(facts, pools, settings)

    for name in (
        "async_clients",
        "sync_clients",
        "decode_responses",
        "missing_decode_responses",
        "pipelines",
        "lua",
        "functions_api",
        "redis_urls",
        "syntax_errors",
    ):
        setattr(facts, name, sorted(set(getattr(facts, name))))
    return facts


def _python_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden folders hold copies of code that is not the app (.ipynb_checkpoints, .tox, .git).
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not d.startswith(".")
            and not os.path.isfile(os.path.join(dirpath, d, "pyvenv.cfg"))
        )
        for fn in sorted(filenames):
            if not fn.endswith(".py"):
                continue
            p = Path(dirpath, fn)
            try:
                if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_FILE_BYTES:
                    continue
            except OSError:
                continue
            yield p


# --- what the names mean -------------------------------------------------------------------------

_ASYNC_MODULES = (
    "redis.asyncio",
    "redis.asyncio.client",
    "redis.asyncio.cluster",
    "redis.asyncio.utils",
    "redis.asyncio.sentinel",
    "redis.asyncio.connection",
    "aioredis",
    "aioredis.client",
    "aioredis.connection",
    "aioredis.utils",
)
_SYNC_MODULES = ("redis", "redis.client", "redis.cluster", "redis.utils", "redis.sentinel", "redis.connection")
_CLIENT_CLASSES = ("Redis", "StrictRedis", "RedisCluster")
_CLIENTS = frozenset(
    {*_CLIENT_CLASSES, "from_url", *(f"{c}.{m}" for c in _CLIENT_CLASSES for m in ("from_url", "from_pool"))}
)
_POOL_CLASSES = ("ConnectionPool", "BlockingConnectionPool")
_POOLS = frozenset({*_POOL_CLASSES, *(f"{p}.from_url" for p in _POOL_CLASSES)})
_AIOREDIS_V1 = frozenset({"create_redis", "create_redis_pool", "create_pool", "create_connection"})


class _Kind(Enum):
    ASYNC_CLIENT = "async client"
    SYNC_CLIENT = "sync client"
    ASYNC_SENTINEL = "async sentinel"
    POOL = "pool"
    AIOREDIS_V1 = "aioredis 1.x"


def _kind_of(qualified: str) -> _Kind | None:
    for mod in _ASYNC_MODULES:  # before the sync ones: "redis.asyncio.Redis" also starts with "redis."
        if qualified.startswith(mod + "."):
            rest = qualified[len(mod) + 1 :]
            if rest in _CLIENTS:
                return _Kind.ASYNC_CLIENT
            if rest in _POOLS:
                return _Kind.POOL
            if rest == "Sentinel":
                return _Kind.ASYNC_SENTINEL
            if mod == "aioredis" and rest in _AIOREDIS_V1:
                return _Kind.AIOREDIS_V1
    for mod in _SYNC_MODULES:
        if qualified.startswith(mod + "."):
            rest = qualified[len(mod) + 1 :]
            if rest in _CLIENTS or rest == "Sentinel":
                return _Kind.SYNC_CLIENT
            if rest in _POOLS:
                return _Kind.POOL
    return None


def _is_redis_name(qualified: str) -> bool:
    return qualified.split(".")[0] in ("redis", "aioredis")


class _Decode(Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"  # benefit of the doubt: counted as YES
    ABSENT = "absent"  # a mapping that does not mention decode_responses


def _combine(values: Iterable[_Decode]) -> _Decode:
    seen = set(values)
    if not seen:
        return _Decode.UNKNOWN
    if seen <= {_Decode.NO, _Decode.ABSENT}:
        return _Decode.NO if _Decode.NO in seen else _Decode.ABSENT
    if seen == {_Decode.YES}:
        return _Decode.YES
    return _Decode.UNKNOWN  # mixed branches or a value we cannot see


@dataclass
class _Pool:
    decode: _Decode
    finding: Finding


# --- one module ---------------------------------------------------------------------------------

_LUA_CALLS = {
    "register_script": 1,
    "script_load": 1,
    "eval": 2,
    "evalsha": 2,
    "eval_ro": 2,
    "evalsha_ro": 2,
    "fcall": 2,
    "fcall_ro": 2,
}  # name -> minimum positional args (pandas' df.eval("a+b") has 1)
_FUNCTION_CALLS = {"function_load": 1, "fcall": 2, "fcall_ro": 2}
_LUA_COMMANDS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", "SCRIPT"}
_FUNCTION_COMMANDS = {"FUNCTION", "FCALL", "FCALL_RO"}
_REDIS_URL_RE = re.compile(r"^\s*rediss?://", re.IGNORECASE)
_ENV_NAME = "REDIS_URL"
_ENV_VAR_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NOT_READERS = {"print", "info", "debug", "warning", "error", "exception", "critical", "log", "write"}


class _Module:
    def __init__(self, rel: str, tree: ast.Module, lines: list[str]) -> None:
        self.rel, self.tree, self.lines = rel, tree, lines
        # One traversal, reused by every pass below (ast.walk per pass dominated the run time).
        self.nodes: list[ast.AST] = [tree]
        self.parent: dict[ast.AST, ast.AST] = {}
        i = 0
        while i < len(self.nodes):
            node = self.nodes[i]
            i += 1
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
                self.nodes.append(child)
        self.aliases: dict[str, set[str]] = defaultdict(set)
        self.stars: set[str] = set()
        self.imports: set[str] = set()
        self._collect_imports()
        self.via_subclass: set[str] = set()  # local names of classes deriving from a redis client class
        # Assignments by scope (function node or the module) and target text; and all of them by text.
        self.assigned: dict[ast.AST, dict[str, list[ast.expr]]] = defaultdict(lambda: defaultdict(list))
        self.assigned_any: dict[str, list[ast.expr]] = defaultdict(list)
        self.params: dict[ast.AST, set[str]] = {}
        self.mutated: set[str] = set()  # dict names changed after creation (kw["decode_responses"] = ...)
        self.pool_calls: dict[ast.Call, _Pool] = {}
        self.pools_by_lastname: dict[str, list[_Pool]] = defaultdict(list)

    # ---- helpers
    def finding(self, node: ast.AST) -> Finding:
        line = getattr(node, "lineno", 1)
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return Finding(self.rel, line, text)

    def scope_of(self, node: ast.AST) -> ast.AST:
        cur = self.parent.get(node)
        while cur is not None and not isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            cur = self.parent.get(cur)
        return cur if cur is not None else self.tree

    def resolve(self, expr: ast.expr) -> set[str]:
        """Fully qualified names an expression may denote, through imports only."""
        if isinstance(expr, ast.Name):
            if expr.id in self.aliases:
                return set(self.aliases[expr.id])
            return {f"{m}.{expr.id}" for m in self.stars}
        if isinstance(expr, ast.Attribute):
            return {f"{base}.{expr.attr}" for base in self.resolve(expr.value)}
        return set()

    def kinds(self, call: ast.Call) -> set[_Kind | None]:
        return {_kind_of(q) for q in self.resolve(call.func)}

    def _collect_imports(self) -> None:
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name.split(".")[0]
                    self.imports.add(top)
                    if a.asname:
                        self.aliases[a.asname].add(a.name)
                    else:  # `import redis.asyncio` binds `redis`
                        self.aliases[top].add(top)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                self.imports.add(node.module.split(".")[0])
                for a in node.names:
                    if a.name == "*":
                        if _is_redis_name(node.module):
                            self.stars.add(node.module)
                    else:
                        self.aliases[a.asname or a.name].add(f"{node.module}.{a.name}")
            elif isinstance(node, ast.ImportFrom):  # relative: a local module, never redis itself
                prefix = "." * node.level + (node.module or "")
                for a in node.names:
                    if a.name != "*":
                        self.aliases[a.asname or a.name].add(f"{prefix}.{a.name}")
        # Module-level aliases of redis names: `Redis = redis.asyncio.Redis`, `make = aioredis.from_url`.
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Name, ast.Attribute)):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                resolved = {q for q in self.resolve(node.value) if _is_redis_name(q)}
                for t in targets if resolved else []:
                    self.aliases[t] |= resolved

    def _collect_assignments(self) -> None:
        for node in self.nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = node.args
                self.params[node] = {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)} | {
                    x.arg for x in (a.vararg, a.kwarg) if x is not None
                }
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                targets, value = [node.target], node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("update", "setdefault", "pop", "__setitem__")
            ):
                self.mutated.add(ast.unparse(node.func.value))
            if value is None:
                continue
            scope = self.scope_of(node)
            for t in targets:
                if isinstance(t, (ast.Name, ast.Attribute)):
                    text = ast.unparse(t)
                    self.assigned[scope][text].append(value)
                    self.assigned_any[text].append(value)
                elif isinstance(t, ast.Subscript):
                    self.mutated.add(ast.unparse(t.value))

    def lookup(self, expr: ast.expr, at: ast.AST) -> list[ast.expr] | None:
        """Values assigned to a name/attribute as seen from `at`; None when it is a parameter or unknown."""
        text = ast.unparse(expr)
        scope = self.scope_of(at)
        if isinstance(expr, ast.Name):
            if expr.id in self.params.get(scope, set()):
                return None
            for s in (scope, self.tree):
                if text in self.assigned[s]:
                    return self.assigned[s][text]
            return None
        # self.pool / app.state.pool: assigned in another method of the same module.
        return self.assigned_any.get(text)

    # ---- decode_responses
    def truth(self, value: ast.expr, at: ast.AST) -> _Decode:
        if isinstance(value, ast.Constant):
            return _Decode.YES if value.value else _Decode.NO
        if isinstance(value, ast.Name):
            found = self.lookup(value, at)
            if found and all(isinstance(v, ast.Constant) for v in found):
                return _combine(_Decode.YES if v.value else _Decode.NO for v in found)  # type: ignore[attr-defined]
        return _Decode.UNKNOWN

    def mapping_decode(self, expr: ast.expr, at: ast.AST, depth: int = 0) -> _Decode:
        """What a `**expr` splat says about decode_responses (ABSENT when it visibly does not say)."""
        if depth > 3:
            return _Decode.UNKNOWN
        if isinstance(expr, ast.Dict):
            result = _Decode.ABSENT
            for k, v in zip(expr.keys, expr.values):
                if k is None:  # {**other}
                    inner = self.mapping_decode(v, at, depth + 1)
                    result = inner if inner is not _Decode.ABSENT else result
                elif isinstance(k, ast.Constant) and k.value == "decode_responses":
                    result = self.truth(v, at)
                elif not isinstance(k, ast.Constant):
                    result = _Decode.UNKNOWN
            return result
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "dict":
            if expr.args:
                return _Decode.UNKNOWN
            return self.keywords_decode(expr, at, depth + 1)
        if isinstance(expr, ast.Name) and ast.unparse(expr) not in self.mutated:
            found = self.lookup(expr, at)
            if found:
                return _combine(self.mapping_decode(v, at, depth + 1) for v in found)
        return _Decode.UNKNOWN

    def keywords_decode(self, call: ast.Call, at: ast.AST, depth: int = 0) -> _Decode:
        result = _Decode.ABSENT
        for kw in call.keywords:
            if kw.arg == "decode_responses":
                return self.truth(kw.value, at)
            if kw.arg is None:
                inner = self.mapping_decode(kw.value, at, depth + 1)
                if inner is not _Decode.ABSENT:
                    result = inner
        return result

    def call_decode(self, call: ast.Call, from_url: bool) -> _Decode:
        """decode_responses of a client or pool call made without a connection_pool."""
        said = self.keywords_decode(call, call)
        if said is not _Decode.ABSENT:
            return said
        if any(isinstance(a, ast.Starred) for a in call.args):
            return _Decode.UNKNOWN
        if from_url:
            # redis-py passes unknown URL query arguments through: ?decode_responses=... turns it on.
            url = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "url"), None)
            if url is not None and "decode_responses=" in _literal_text(url):
                return _Decode.YES
        elif len(call.args) > 8:  # positional connection_pool / decode_responses: cannot tell
            return _Decode.UNKNOWN
        return _Decode.NO

    @property
    def uses_redis(self) -> bool:
        return bool(self.stars) or any(_is_redis_name(q) for names in self.aliases.values() for q in names)

    def subclass_bases(self) -> dict[str, set[str]]:
        """Classes defined here that derive from a redis client class: name -> qualified redis bases."""
        out: dict[str, set[str]] = {}
        for node in self.nodes:
            if isinstance(node, ast.ClassDef):
                bases = {
                    q
                    for b in node.bases
                    for q in self.resolve(b)
                    if _kind_of(q) in (_Kind.ASYNC_CLIENT, _Kind.SYNC_CLIENT)
                }
                if bases:
                    out[node.name] = bases
        return out

    def adopt(self, subclasses: dict[str, set[str]]) -> None:
        """Let `Cache(...)` resolve to its redis base, here and where `Cache` is imported."""
        defined = {n.name for n in self.nodes if isinstance(n, ast.ClassDef)}
        for name in defined & subclasses.keys():
            self.aliases[name] |= subclasses[name]
            self.via_subclass.add(name)
        for name, targets in list(self.aliases.items()):
            for q in list(targets):
                last = q.rsplit(".", 1)[-1]
                if not _is_redis_name(q) and last in subclasses:
                    targets |= subclasses[last]
                    self.via_subclass.add(name)

    def evaluate_pools(self) -> None:
        # A name matched across modules (`from app.db import pool`, `app.state.pool`) may also be assigned
        # something that is not a pool we can read (`pool = make_pool()`): such a value makes it UNKNOWN.
        for node in self.nodes:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                value = node.value
                if (isinstance(value, ast.Constant) and value.value is None) or (
                    isinstance(value, ast.Call) and _Kind.POOL in self.kinds(value)
                ):
                    continue
                for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(t, (ast.Name, ast.Attribute)):
                        last = t.id if isinstance(t, ast.Name) else t.attr
                        self.pools_by_lastname[last].append(_Pool(_Decode.UNKNOWN, self.finding(node)))
        if not self.uses_redis:
            return
        self._collect_assignments()  # only needed to follow values into redis calls
        for node in self.nodes:
            if isinstance(node, ast.Call) and _Kind.POOL in self.kinds(node):
                pool = _Pool(self.call_decode(node, _is_from_url(node)), self.finding(node))
                self.pool_calls[node] = pool
                target = self.parent.get(node)
                if isinstance(target, (ast.Assign, ast.AnnAssign)):
                    for t in target.targets if isinstance(target, ast.Assign) else [target.target]:
                        if isinstance(t, (ast.Name, ast.Attribute)):
                            self.pools_by_lastname[t.id if isinstance(t, ast.Name) else t.attr].append(pool)

    def pool_decode(self, expr: ast.expr, at: ast.AST, pools: dict[str, list[_Pool]]) -> tuple[_Decode, Finding | None]:
        candidates: list[_Pool] = []
        if isinstance(expr, ast.Call):
            candidates = [self.pool_calls[expr]] if expr in self.pool_calls else []
        elif isinstance(expr, (ast.Name, ast.Attribute)):
            if isinstance(expr, ast.Name) and expr.id in self.params.get(self.scope_of(at), set()):
                return _Decode.UNKNOWN, None  # a parameter: whoever calls decides
            values = self.lookup(expr, at) or []
            candidates = [self.pool_calls[v] for v in values if isinstance(v, ast.Call) and v in self.pool_calls]
            # Built in another module: `from app.redis import pool`, or `app.state.pool` set in a lifespan.
            if not values and (isinstance(expr, ast.Attribute) or expr.id in self.aliases):
                if isinstance(expr, ast.Name):  # by the name it has where it was built (`import x as y`)
                    names = {q.rsplit(".", 1)[-1] for q in self.aliases[expr.id]}
                else:
                    names = {expr.attr}
                candidates = [pool for name in sorted(names) for pool in pools.get(name, [])]
        if not candidates:
            return _Decode.UNKNOWN, None
        decode = _combine(p.decode for p in candidates)
        # The pool's line is where the fix goes; for an unknown pool the client's line says more.
        return decode, candidates[0].finding if len(candidates) == 1 and decode is not _Decode.UNKNOWN else None

    # ---- the walk
    def collect(self, facts: StaticFacts, pools: dict[str, list[_Pool]], settings: set[str]) -> None:
        facts.libraries |= {m for m in self.imports if m not in sys.stdlib_module_names and m != "__future__"}
        docstrings = {
            id(n.value)
            for n in self.nodes
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
        }
        for node in self.nodes:
            if isinstance(node, ast.Call):
                self._call(node, facts, pools)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                self._string(node, facts, settings)
            elif isinstance(node, ast.Subscript) and _is_env_name(node.slice):
                facts.reads_redis_url_env = True  # os.environ["REDIS_URL"]
            elif isinstance(node, ast.Compare) and _is_env_name(node.left):
                facts.reads_redis_url_env = True  # "REDIS_URL" in os.environ
            elif isinstance(node, ast.ClassDef) and node.name in settings and _settings_reads_url(node):
                facts.reads_redis_url_env = True

    def _call(self, call: ast.Call, facts: StaticFacts, pools: dict[str, list[_Pool]]) -> None:
        kinds = self.kinds(call) - {None}
        func = call.func
        attr = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""

        if kinds & {_Kind.ASYNC_CLIENT, _Kind.ASYNC_SENTINEL, _Kind.AIOREDIS_V1}:
            here = self.finding(call)
            facts.async_clients.append(here)
            decode, where = self._client_decode(call, kinds, pools)
            if _root_name(func) in self.via_subclass and not any(k.arg == "decode_responses" for k in call.keywords):
                decode = _Decode.UNKNOWN  # the subclass's own __init__ may set it
            target = where or here
            (
                facts.missing_decode_responses if decode in (_Decode.NO, _Decode.ABSENT) else facts.decode_responses
            ).append(target)
        elif kinds == {_Kind.SYNC_CLIENT} and None not in self.kinds(call):
            facts.sync_clients.append(self.finding(call))
        if kinds & {_Kind.ASYNC_CLIENT, _Kind.SYNC_CLIENT, _Kind.POOL, _Kind.ASYNC_SENTINEL}:
            self._host_args(call, facts)

        if not isinstance(func, ast.Attribute):
            if attr in _NOT_READERS:
                return
            if _reads_env(call):
                facts.reads_redis_url_env = True
            return
        receiver = self.resolve(func.value)
        foreign = bool(receiver) and not any(_is_redis_name(q) for q in receiver)  # transformers.pipeline(...)
        # Positional arguments, counting *args and the redis-only keyword numkeys= as "enough".
        npos = len(call.args)
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg == "numkeys" for k in call.keywords):
            npos += 99
        if attr == "pipeline" and not foreign:
            facts.pipelines.append(self.finding(call))
        if not foreign and attr in _LUA_CALLS and npos >= _LUA_CALLS[attr]:
            facts.lua.append(self.finding(call))
        if not foreign and attr in _FUNCTION_CALLS and npos >= _FUNCTION_CALLS[attr]:
            facts.functions_api.append(self.finding(call))
        if attr == "execute_command" and call.args and isinstance(call.args[0], ast.Constant):
            command = str(call.args[0].value).upper().split(" ")[0]
            if command in _LUA_COMMANDS:
                facts.lua.append(self.finding(call))
            if command in _FUNCTION_COMMANDS:
                facts.functions_api.append(self.finding(call))
        if attr not in _NOT_READERS and _reads_env(call):
            facts.reads_redis_url_env = True

    def _client_decode(
        self, call: ast.Call, kinds: set[_Kind | None], pools: dict[str, list[_Pool]]
    ) -> tuple[_Decode, Finding | None]:
        if _Kind.ASYNC_SENTINEL in kinds:
            return _Decode.UNKNOWN, None  # decode is set later, on master_for(...): not followed
        if _Kind.AIOREDIS_V1 in kinds:  # aioredis 1.x decodes when given an encoding
            has = any(k.arg == "encoding" for k in call.keywords) or any(k.arg is None for k in call.keywords)
            return (_Decode.YES if has else _Decode.NO), None
        func = call.func
        pool_expr = next((k.value for k in call.keywords if k.arg == "connection_pool"), None)
        if pool_expr is None and isinstance(func, ast.Attribute) and func.attr == "from_pool" and call.args:
            pool_expr = call.args[0]
        if pool_expr is not None:  # the pool's connection kwargs win over the client's
            return self.pool_decode(pool_expr, call, pools)
        return self.call_decode(call, _is_from_url(call)), None

    def _host_args(self, call: ast.Call, facts: StaticFacts) -> None:
        literal_host = any(
            (k.arg == "host" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str))
            or (k.arg == "port" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, int))
            for k in call.keywords
        )
        if not _is_from_url(call) and call.args and isinstance(call.args[0], ast.Constant):
            literal_host = literal_host or isinstance(call.args[0].value, str)
        if literal_host:
            facts.redis_urls.append(self.finding(call))

    def _string(self, node: ast.Constant, facts: StaticFacts, settings: set[str]) -> None:
        s: str = node.value
        if _REDIS_URL_RE.match(s) and not self._configured_default(node, settings):
            facts.redis_urls.append(self.finding(node))
        if "redis.call(" in s or "redis.pcall(" in s:
            facts.lua.append(self.finding(node))
        if "redis.register_function" in s or s.lstrip().startswith("#!lua"):
            facts.functions_api.append(self.finding(node))
            facts.lua.append(self.finding(node))

    def _configured_default(self, node: ast.Constant, settings: set[str]) -> bool:
        """A URL literal the environment overrides is a fallback, not a hard-coded address.

        os.getenv("REDIS_URL", "redis://localhost"), environ.get(...), config("X", default=...), a field
        default in a pydantic settings class, and the literal parts of f"redis://{host}:{port}".
        """
        parent = self.parent.get(node)
        if isinstance(parent, ast.JoinedStr):
            return True
        if isinstance(parent, ast.keyword):
            return parent.arg == "default"
        if isinstance(parent, ast.Call) and node in parent.args[1:]:
            first = parent.args[0]
            return (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and bool(_ENV_VAR_RE.match(first.value))
            )
        if isinstance(parent, (ast.Assign, ast.AnnAssign)):
            owner = self.parent.get(parent)
            return isinstance(owner, ast.ClassDef) and owner.name in settings
        return False


def _adopt_subclasses(modules: list[_Module]) -> None:
    subclasses: dict[str, set[str]] = {}
    for _ in range(2):  # a second round catches a subclass of a subclass
        for mod in modules:
            for name, bases in mod.subclass_bases().items():
                subclasses.setdefault(name, set()).update(bases)
        for mod in modules:
            mod.adopt(subclasses)


def _root_name(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _is_from_url(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "from_url") or (isinstance(f, ast.Name) and f.id == "from_url")


def _literal_text(expr: ast.expr) -> str:
    if isinstance(expr, ast.Constant):
        return str(expr.value)
    if isinstance(expr, ast.JoinedStr):
        return "".join(str(v.value) for v in expr.values if isinstance(v, ast.Constant))
    if isinstance(expr, ast.BinOp):
        return _literal_text(expr.left) + _literal_text(expr.right)
    return ""


def _is_env_name(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) and expr.value == _ENV_NAME


def _reads_env(call: ast.Call) -> bool:
    # os.getenv("REDIS_URL"), environ.get(...), config("REDIS_URL"), env.str(...), AliasChoices(...),
    # and Field(alias=/validation_alias=/env="REDIS_URL"). Lenient on purpose: "False" here is the
    # direction that would count against the student.
    if any(_is_env_name(a) for a in call.args):
        return True
    return any(k.arg in ("alias", "validation_alias", "env") and _is_env_name(k.value) for k in call.keywords)


# --- pydantic settings --------------------------------------------------------------------------


def _settings_classes(modules: list[_Module]) -> set[str]:
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


def _settings_reads_url(cls: ast.ClassDef) -> bool:
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
