"""Pipeline and Lua facts: pipelines opened, scripts evaluated or loaded, Redis Functions used."""

from __future__ import annotations

import ast

from grader.static.facts import StaticFacts
from grader.static.module import ParsedModule
from grader.static.names import is_redis_name

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


def method_call_facts(mod: ParsedModule, call: ast.Call, facts: StaticFacts) -> None:
    """`x.pipeline()`, `x.eval(script, n, ...)`, `x.execute_command("EVAL", ...)` and the like."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return
    attr = func.attr
    receiver = mod.resolve(func.value)
    foreign = bool(receiver) and not any(is_redis_name(q) for q in receiver)  # transformers.pipeline(...)
    # Positional arguments, counting *args and the redis-only keyword numkeys= as "enough".
    npos = len(call.args)
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg == "numkeys" for k in call.keywords):
        npos += 99
    if attr == "pipeline" and not foreign:
        facts.pipelines.append(mod.finding(call))
    if not foreign and attr in _LUA_CALLS and npos >= _LUA_CALLS[attr]:
        facts.lua.append(mod.finding(call))
    if not foreign and attr in _FUNCTION_CALLS and npos >= _FUNCTION_CALLS[attr]:
        facts.functions_api.append(mod.finding(call))
    if attr == "execute_command" and call.args and isinstance(call.args[0], ast.Constant):
        command = str(call.args[0].value).upper().split(" ")[0]
        if command in _LUA_COMMANDS:
            facts.lua.append(mod.finding(call))
        if command in _FUNCTION_COMMANDS:
            facts.functions_api.append(mod.finding(call))


def script_string_facts(mod: ParsedModule, node: ast.Constant, facts: StaticFacts) -> None:
    """A string literal holding a Lua script or a Redis Functions library."""
    s: str = node.value
    if "redis.call(" in s or "redis.pcall(" in s:
        facts.lua.append(mod.finding(node))
    if "redis.register_function" in s or s.lstrip().startswith("#!lua"):
        facts.functions_api.append(mod.finding(node))
        facts.lua.append(mod.finding(node))
