"""One parsed module of the submission: its nodes, imports, assignments and scopes, for the fact passes."""

from __future__ import annotations

import ast
from collections import defaultdict

from grader.static.facts import Finding
from grader.static.names import Kind, Pool, is_redis_name, kind_of


class ParsedModule:
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
        self.pool_calls: dict[ast.Call, Pool] = {}
        self.pools_by_lastname: dict[str, list[Pool]] = defaultdict(list)

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

    def kinds(self, call: ast.Call) -> set[Kind | None]:
        return {kind_of(q) for q in self.resolve(call.func)}

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
                        if is_redis_name(node.module):
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
                resolved = {q for q in self.resolve(node.value) if is_redis_name(q)}
                for t in targets if resolved else []:
                    self.aliases[t] |= resolved

    def collect_assignments(self) -> None:
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

    @property
    def uses_redis(self) -> bool:
        return bool(self.stars) or any(is_redis_name(q) for names in self.aliases.values() for q in names)

    def subclass_bases(self) -> dict[str, set[str]]:
        """Classes defined here that derive from a redis client class: name -> qualified redis bases."""
        out: dict[str, set[str]] = {}
        for node in self.nodes:
            if isinstance(node, ast.ClassDef):
                bases = {
                    q
                    for b in node.bases
                    for q in self.resolve(b)
                    if kind_of(q) in (Kind.ASYNC_CLIENT, Kind.SYNC_CLIENT)
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
                if not is_redis_name(q) and last in subclasses:
                    targets |= subclasses[last]
                    self.via_subclass.add(name)


def adopt_subclasses(modules: list[ParsedModule]) -> None:
    subclasses: dict[str, set[str]] = {}
    for _ in range(2):  # a second round catches a subclass of a subclass
        for mod in modules:
            for name, bases in mod.subclass_bases().items():
                subclasses.setdefault(name, set()).update(bases)
        for mod in modules:
            mod.adopt(subclasses)


def root_name(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None
