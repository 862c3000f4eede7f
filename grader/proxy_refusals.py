"""Which commands an app may not send through the proxy: those that administer the server rather than use it.

An app that shuts Redis down, sets a password, pauses or kills clients, or makes the server a replica would
take the grader's own Redis with it, and the checks after it would judge a broken server instead of the app.
The proxy answers these with an error and never forwards them. What real apps send stays allowed: CLIENT
SETNAME / SETINFO / ID / INFO, HELLO, SELECT, SCRIPT and FUNCTION LOAD, CONFIG GET, and CONFIG SET of
notify-keyspace-events (keyspace notifications).
"""

from __future__ import annotations

from collections.abc import Sequence

# Refused whatever their arguments.
_COMMANDS = frozenset({
    "SHUTDOWN", "DEBUG", "MODULE", "FAILOVER", "REPLICAOF", "SLAVEOF", "SYNC", "PSYNC", "MIGRATE",
})  # fmt: skip
# Refused for these subcommands only.
_SUBCOMMANDS = {
    "CLIENT": frozenset({"KILL", "PAUSE", "UNPAUSE", "NO-EVICT"}),
    "ACL": frozenset({"SETUSER", "DELUSER", "LOAD", "SAVE"}),
    "CONFIG": frozenset({"SET", "RESETSTAT", "REWRITE"}),
}
# CONFIG SET parameters an app may change: they alter what Redis tells clients, not whether it serves them.
_CONFIG_SETTABLE = frozenset({"NOTIFY-KEYSPACE-EVENTS"})


def refusal(name: str, args: Sequence[str]) -> str | None:
    """The name of what is refused ("CONFIG SET", "SHUTDOWN"), or None when the command may reach Redis."""
    if name in _COMMANDS:
        return name
    refused_subcommands = _SUBCOMMANDS.get(name)
    if refused_subcommands is None or not args:
        return None
    subcommand = args[0].upper()
    if subcommand not in refused_subcommands:
        return None
    if name == "CONFIG" and subcommand == "SET" and _only_settable(args[1:]):
        return None
    return f"{name} {subcommand}"


def _only_settable(pairs: Sequence[str]) -> bool:
    parameters = pairs[::2]
    return bool(parameters) and len(pairs) % 2 == 0 and all(p.upper() in _CONFIG_SETTABLE for p in parameters)


def refusal_reply(what: str) -> bytes:
    return f"-ERR {what} is disabled by the grader\r\n".encode()
