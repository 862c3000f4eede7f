"""Where things are in the code, for evidence that points at a line: Redis calls by command, and routes.

These facts locate; they never decide a grade. A call is a Redis call when its receiver resolves to redis, or,
unresolved (`r`, `self.redis`, `request.app.state.redis`), when it is awaited or its receiver is named like a
client: a dict's `.get` is not listed."""

from __future__ import annotations

import ast
import re

from grader.sources import is_test_file
from grader.static.facts import StaticFacts
from grader.static.module import ParsedModule
from grader.static.names import is_redis_name

REDIS_METHODS = {
    "get", "set", "setex", "psetex", "setnx", "getex", "delete", "unlink", "expire", "pexpire", "ttl", "incr",
    "incrby", "decr", "zadd", "zincrby", "zrange", "zrevrange", "zrangebyscore", "zrevrangebyscore", "zscore",
    "hset", "hget", "hgetall", "ping", "eval", "evalsha", "register_script", "script_load", "execute_command",
}
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "api_route"}
_CLIENT_LIKE = re.compile(r"(^|[._])(r|rd|rdb|redis\w*|cache\w*|client|conn|pipe\w*|store)$", re.IGNORECASE)


def _receiver_text(expr: ast.expr) -> str:
    try:
        return ast.unparse(expr)
    except Exception:  # noqa: BLE001 - a node unparse cannot print is simply not a client
        return ""


def redis_call_facts(mod: ParsedModule, call: ast.Call, facts: StaticFacts, awaited: bool) -> None:
    func = call.func
    name_of_call = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name_of_call == "load_dotenv" and any(
            k.arg == "override" and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords):
        facts.dotenv_overrides.append(mod.finding(call))
        return
    if not isinstance(func, ast.Attribute) or func.attr.lower() not in REDIS_METHODS:
        return
    if is_test_file(mod.rel.rsplit("/", 1)[-1]):
        return  # a test's HTTP client (`await client.get("/top")`) is not the app's Redis
    receiver = mod.resolve(func.value)
    if receiver:
        if not any(is_redis_name(q) for q in receiver):
            return
    elif not (awaited or _CLIENT_LIKE.search(_receiver_text(func.value))):
        return
    name = func.attr.lower()
    if name == "execute_command" and call.args and isinstance(call.args[0], ast.Constant):
        name = str(call.args[0].value).split(" ")[0].lower()
    facts.redis_calls.setdefault(name, []).append(mod.finding(call))


def route_facts(mod: ParsedModule, node: ast.FunctionDef | ast.AsyncFunctionDef, facts: StaticFacts) -> None:
    """`@app.get("/top")`, `@router.post("/")`: the decorator's line, keyed "GET /top" (the router's prefix is
    not followed: a route is found by its own path)."""
    for decorator in node.decorator_list:
        if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
            continue
        method = decorator.func.attr.lower()
        path = decorator.args[0] if decorator.args else None
        if method in ROUTE_METHODS and isinstance(path, ast.Constant) and isinstance(path.value, str):
            facts.routes.setdefault(f"{method.upper()} {path.value}", []).append(mod.finding(decorator))
