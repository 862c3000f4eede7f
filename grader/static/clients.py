"""Client facts: which redis clients the code builds (async or sync), and whether they decode responses.

Precision over recall: what the AST cannot see (a value computed at run time, a pool built by a helper)
counts as decoding (Decode.UNKNOWN), never as missing decode_responses.
"""

from __future__ import annotations

import ast

from grader.static.facts import Finding, StaticFacts
from grader.static.module import ParsedModule, root_name
from grader.static.names import Decode, Kind, Pool, combine

Pools = dict[str, list[Pool]]  # last name of the assigned target -> pools assigned to it, across modules


def client_facts(mod: ParsedModule, call: ast.Call, facts: StaticFacts, pools: Pools) -> None:
    """Record `call` if it builds a redis client (its decoding too) or gives one a literal host/port."""
    all_kinds = mod.kinds(call)
    kinds = all_kinds - {None}
    if kinds & {Kind.ASYNC_CLIENT, Kind.ASYNC_SENTINEL, Kind.AIOREDIS_V1}:
        here = mod.finding(call)
        facts.async_clients.append(here)
        decode, where = client_decode(mod, call, kinds, pools)
        if root_name(call.func) in mod.via_subclass and not any(k.arg == "decode_responses" for k in call.keywords):
            decode = Decode.UNKNOWN  # the subclass's own __init__ may set it
        target = where or here
        (facts.missing_decode_responses if decode in (Decode.NO, Decode.ABSENT) else facts.decode_responses).append(
            target
        )
    elif kinds == {Kind.SYNC_CLIENT} and None not in all_kinds:
        facts.sync_clients.append(mod.finding(call))
    if kinds & {Kind.ASYNC_CLIENT, Kind.SYNC_CLIENT, Kind.POOL, Kind.ASYNC_SENTINEL}:
        host_args(mod, call, facts)


def truth(mod: ParsedModule, value: ast.expr, at: ast.AST) -> Decode:
    if isinstance(value, ast.Constant):
        return Decode.YES if value.value else Decode.NO
    if isinstance(value, ast.Name):
        found = mod.lookup(value, at)
        if found and all(isinstance(v, ast.Constant) for v in found):
            return combine(Decode.YES if v.value else Decode.NO for v in found)  # type: ignore[attr-defined]
    return Decode.UNKNOWN


def mapping_decode(mod: ParsedModule, expr: ast.expr, at: ast.AST, depth: int = 0) -> Decode:
    """What a `**expr` splat says about decode_responses (ABSENT when it visibly does not say)."""
    if depth > 3:
        return Decode.UNKNOWN
    if isinstance(expr, ast.Dict):
        result = Decode.ABSENT
        for k, v in zip(expr.keys, expr.values):
            if k is None:  # {**other}
                inner = mapping_decode(mod, v, at, depth + 1)
                result = inner if inner is not Decode.ABSENT else result
            elif isinstance(k, ast.Constant) and k.value == "decode_responses":
                result = truth(mod, v, at)
            elif not isinstance(k, ast.Constant):
                result = Decode.UNKNOWN
        return result
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "dict":
        if expr.args:
            return Decode.UNKNOWN
        return keywords_decode(mod, expr, at, depth + 1)
    if isinstance(expr, ast.Name) and ast.unparse(expr) not in mod.mutated:
        found = mod.lookup(expr, at)
        if found:
            return combine(mapping_decode(mod, v, at, depth + 1) for v in found)
    return Decode.UNKNOWN


def keywords_decode(mod: ParsedModule, call: ast.Call, at: ast.AST, depth: int = 0) -> Decode:
    result = Decode.ABSENT
    for kw in call.keywords:
        if kw.arg == "decode_responses":
            return truth(mod, kw.value, at)
        if kw.arg is None:
            inner = mapping_decode(mod, kw.value, at, depth + 1)
            if inner is not Decode.ABSENT:
                result = inner
    return result


def call_decode(mod: ParsedModule, call: ast.Call, from_url: bool) -> Decode:
    """decode_responses of a client or pool call made without a connection_pool."""
    said = keywords_decode(mod, call, call)
    if said is not Decode.ABSENT:
        return said
    if any(isinstance(a, ast.Starred) for a in call.args):
        return Decode.UNKNOWN
    if from_url:
        # redis-py passes unknown URL query arguments through: ?decode_responses=... turns it on.
        url = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "url"), None)
        if url is not None and "decode_responses=" in literal_text(url):
            return Decode.YES
    elif len(call.args) > 8:  # positional connection_pool / decode_responses: cannot tell
        return Decode.UNKNOWN
    return Decode.NO


def evaluate_pools(mod: ParsedModule) -> None:
    # A name matched across modules (`from app.db import pool`, `app.state.pool`) may also be assigned
    # something that is not a pool we can read (`pool = make_pool()`): such a value makes it UNKNOWN.
    for node in mod.nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            value = node.value
            if (isinstance(value, ast.Constant) and value.value is None) or (
                isinstance(value, ast.Call) and Kind.POOL in mod.kinds(value)
            ):
                continue
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(t, (ast.Name, ast.Attribute)):
                    last = t.id if isinstance(t, ast.Name) else t.attr
                    mod.pools_by_lastname[last].append(Pool(Decode.UNKNOWN, mod.finding(node)))
    if not mod.uses_redis:
        return
    mod.collect_assignments()  # only needed to follow values into redis calls
    for node in mod.nodes:
        if isinstance(node, ast.Call) and Kind.POOL in mod.kinds(node):
            pool = Pool(call_decode(mod, node, is_from_url(node)), mod.finding(node))
            mod.pool_calls[node] = pool
            target = mod.parent.get(node)
            if isinstance(target, (ast.Assign, ast.AnnAssign)):
                for t in target.targets if isinstance(target, ast.Assign) else [target.target]:
                    if isinstance(t, (ast.Name, ast.Attribute)):
                        mod.pools_by_lastname[t.id if isinstance(t, ast.Name) else t.attr].append(pool)


def pool_decode(mod: ParsedModule, expr: ast.expr, at: ast.AST, pools: Pools) -> tuple[Decode, Finding | None]:
    candidates: list[Pool] = []
    if isinstance(expr, ast.Call):
        candidates = [mod.pool_calls[expr]] if expr in mod.pool_calls else []
    elif isinstance(expr, (ast.Name, ast.Attribute)):
        if isinstance(expr, ast.Name) and expr.id in mod.params.get(mod.scope_of(at), set()):
            return Decode.UNKNOWN, None  # a parameter: whoever calls decides
        values = mod.lookup(expr, at) or []
        candidates = [mod.pool_calls[v] for v in values if isinstance(v, ast.Call) and v in mod.pool_calls]
        # Built in another module: `from app.redis import pool`, or `app.state.pool` set in a lifespan.
        if not values and (isinstance(expr, ast.Attribute) or expr.id in mod.aliases):
            if isinstance(expr, ast.Name):  # by the name it has where it was built (`import x as y`)
                names = {q.rsplit(".", 1)[-1] for q in mod.aliases[expr.id]}
            else:
                names = {expr.attr}
            candidates = [pool for name in sorted(names) for pool in pools.get(name, [])]
    if not candidates:
        return Decode.UNKNOWN, None
    decode = combine(p.decode for p in candidates)
    # The pool's line is where the fix goes; for an unknown pool the client's line says more.
    return decode, candidates[0].finding if len(candidates) == 1 and decode is not Decode.UNKNOWN else None


def client_decode(
    mod: ParsedModule, call: ast.Call, kinds: set[Kind | None], pools: Pools
) -> tuple[Decode, Finding | None]:
    if Kind.ASYNC_SENTINEL in kinds:
        return Decode.UNKNOWN, None  # decode is set later, on master_for(...): not followed
    if Kind.AIOREDIS_V1 in kinds:  # aioredis 1.x decodes when given an encoding
        has = any(k.arg == "encoding" for k in call.keywords) or any(k.arg is None for k in call.keywords)
        return (Decode.YES if has else Decode.NO), None
    func = call.func
    pool_expr = next((k.value for k in call.keywords if k.arg == "connection_pool"), None)
    if pool_expr is None and isinstance(func, ast.Attribute) and func.attr == "from_pool" and call.args:
        pool_expr = call.args[0]
    if pool_expr is not None:  # the pool's connection kwargs win over the client's
        return pool_decode(mod, pool_expr, call, pools)
    return call_decode(mod, call, is_from_url(call)), None


def host_args(mod: ParsedModule, call: ast.Call, facts: StaticFacts) -> None:
    literal_host = any(
        (k.arg == "host" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str))
        or (k.arg == "port" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, int))
        for k in call.keywords
    )
    if not is_from_url(call) and call.args and isinstance(call.args[0], ast.Constant):
        literal_host = literal_host or isinstance(call.args[0].value, str)
    if literal_host:
        facts.redis_urls.append(mod.finding(call))


def is_from_url(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "from_url") or (isinstance(f, ast.Name) and f.id == "from_url")


def literal_text(expr: ast.expr) -> str:
    if isinstance(expr, ast.Constant):
        return str(expr.value)
    if isinstance(expr, ast.JoinedStr):
        return "".join(str(v.value) for v in expr.values if isinstance(v, ast.Constant))
    if isinstance(expr, ast.BinOp):
        return literal_text(expr.left) + literal_text(expr.right)
    return ""
