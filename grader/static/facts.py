"""What static analysis reports: findings (file, line, text) grouped by fact."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # Where things are (evidence points at them; no grade rests on them): Redis calls by lower-case command
    # ("zadd", "set", "delete", ...), and route decorators by "METHOD /path" as written.
    redis_calls: dict[str, list[Finding]] = field(default_factory=dict)
    # load_dotenv(override=True): a committed .env then wins over the REDIS_URL the environment gives.
    dotenv_overrides: list[Finding] = field(default_factory=list)
    routes: dict[str, list[Finding]] = field(default_factory=dict)

    def located(self, *names: str, limit: int = 3) -> list[str]:
        """'file.py:N: <source line>' for the first Redis calls or routes named (commands or "GET /top")."""
        found = sorted({f for n in names for f in self.redis_calls.get(n.lower(), []) + self.routes.get(n, [])})
        return [f"{f.file}:{f.line}: {f.text}" for f in found[:limit]]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, for check evidence."""
        out: dict[str, object] = {}
        for name, value in vars(self).items():
            if isinstance(value, list):
                out[name] = [vars(f) for f in value]
            elif isinstance(value, set):
                out[name] = sorted(value)
            elif isinstance(value, dict):
                out[name] = {k: [vars(f) for f in v] for k, v in value.items()}
            else:
                out[name] = value
        return out
