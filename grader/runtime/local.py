"""The local runtime: everything runs as the grader's own user on this machine, contained by grader/sandbox.py
(process groups, rlimits, a scrubbed environment; not a security boundary)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from grader.app import AppLaunch, RunningApp
from grader.environment import Environment, prepare_environment
from grader.runtime.base import TCP, ClientAddressing, tcp_redis_env
from grader.sandbox import CompletedRun, run_sandboxed

if TYPE_CHECKING:
    from typing_extensions import Self

    from grader.checking import RunCommand
    from grader.runtime.base import Endpoint


class LocalRuntime:
    name = "local"
    addressing: ClientAddressing = TCP

    def prepare(self, root: Path, kind: str) -> Environment:
        return prepare_environment(root, kind)

    def app(self, launch: AppLaunch, redis: Endpoint, *, start_timeout: float) -> RunningApp:
        return RunningApp(replace(launch, env={**tcp_redis_env(redis), **launch.env}), start_timeout=start_timeout)

    def redis_env(self, redis: Endpoint) -> dict[str, str]:
        return tcp_redis_env(redis)

    def runner(self, redis: Endpoint, python: str, app_dir: Path, *, yields: bool = False) -> RunCommand:
        async def run(
            argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
        ) -> CompletedRun:
            """`cwd` defaults to the app's folder; a check may pick another inside the workspace (its tests' root)."""
            bin_dir = str(Path(python).parent)
            full_env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", **tcp_redis_env(redis), **(env or {})}
            return await run_sandboxed(argv, cwd or app_dir, full_env, timeout=timeout, yields=yields)

        return run

    def describe(self) -> dict[str, str]:
        return {"runtime": self.name}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
