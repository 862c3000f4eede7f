"""The confinement every container of the submission gets, and the containers' paths.

No network (network_mode="none": no interface but loopback), an unprivileged user, no capabilities, no new
privileges, memory/pids/CPU limits, a read-only root file system with private tmpfs scratch space, and an
environment with nothing of the grader's. The grader reaches it only through Unix sockets in a host directory
mounted at SOCKETS. Every container is labelled with its grader (grader/services.py OWNER_LABEL), so one left by
a grader killed with SIGKILL is removed by the next one's orphan sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import procfs
from grader.services import OWNER_LABEL

log = logging.getLogger(__name__)

USER = "65534:65534"  # nobody:nogroup
MEMORY = "512m"
PIDS = 256
CPUS = 1.0
SCRATCH = "rw,nosuid,nodev,size=64m,mode=1777"
# A command's private, writable copy of the submission (counted in its memory limit as it fills).
WORKSPACE_SCRATCH = "rw,nosuid,nodev,size=256m,mode=1777"

ENV_DIR = "/opt/redis-grader/env"  # the submission's venv, mounted read-only
PYTHON = f"{ENV_DIR}/bin/python"
RELAY = "/opt/redis-grader/relay.py"
RELAY_SOURCE = Path(__file__).with_name("relay.py")
SUBMISSION = "/opt/redis-grader/submission"  # a command's container: the read-only submission it copies
SOCKETS = "/run/grader"  # host directory with the Unix sockets (app.sock, redis.sock)
# Where the relay listens inside the container: a port picked per grading, never Redis's default 6379, so that
# an app that ignores REDIS_URL and dials localhost:6379 finds nothing there, as it would on the local runtime.
REDIS_PORTS = (20000, 60000)


@dataclass(frozen=True)
class Limits:
    memory: str = MEMORY
    pids: int = PIDS
    cpus: float = CPUS


def labels() -> dict[str, str]:
    return {OWNER_LABEL: procfs.identity(os.getpid()) or "unknown"}


def bind(source: Path | str, target: str, *, read_only: bool = True) -> Any:
    import docker.types

    return docker.types.Mount(target=target, source=str(source), type="bind", read_only=read_only)


def confined(limits: Limits = Limits(), *, init: bool = True) -> dict[str, Any]:
    """docker's containers.create() keyword arguments for a container of student code. `init`: the engine's
    init process as PID 1 (a container whose first process reaps orphans itself, as the relay does, needs none)."""
    return {
        "user": USER,
        "network_mode": "none",
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,  # no swap on top
        "pids_limit": limits.pids,
        "nano_cpus": int(limits.cpus * 1e9),
        "read_only": True,
        "tmpfs": {"/tmp": SCRATCH},
        "init": init,  # a real PID 1 reaps orphans and passes signals on
        # The engine keeps a container's output on the host's disk: only its last MiB, as the sandbox keeps a tail.
        "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
        "labels": labels(),
        "detach": True,
    }


def environment(extra: dict[str, str]) -> dict[str, str]:
    """The container's whole environment: nothing of the grader's."""
    return {
        "PATH": f"{ENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


JOB = f"{SOCKETS}/job.json"


def idle_command(redis_port: int, copy_to: str | None = None) -> list[str]:
    """What every container starts with: the relay, waiting for the job the grader gives it (write_job); with
    `copy_to`, copying the submission (mounted at SUBMISSION) there first."""
    command = [PYTHON, "-I", RELAY, f"{SOCKETS}/redis.sock", str(redis_port), "--job", JOB]
    return command + ["--copy", SUBMISSION, copy_to] if copy_to else command


# A tenth of the engine's usual CPU weight (cgroup cpu.shares, 1024 by default), as grader/sandbox.py's
# YIELDING_NICE gives a local process. The engine's limits (nano_cpus) still cap it.
YIELDING_CPU_SHARES = 102


def yield_processor(container: Any) -> None:
    """Give a started container a tenth of the usual CPU weight: a command that runs beside the timing checks (the
    submission's own tests) cannot weigh on what they measure."""
    container.update(cpu_shares=YIELDING_CPU_SHARES)


def write_job(sockets: Path, argv: list[str], cwd: str, env: dict[str, str]) -> None:
    """Give the container whose socket directory is `sockets` its command (see grader/runtime/relay.py)."""
    staging = sockets / ".job.json"
    staging.write_text(json.dumps({"argv": argv, "cwd": cwd, "env": env}), encoding="utf-8")
    os.chmod(staging, 0o644)
    os.rename(staging, sockets / "job.json")  # whole or not at all: the relay reads it as soon as it exists


def remove(container: Any) -> None:
    """Remove a container (running or not) with its anonymous volumes; never raises."""
    with contextlib.suppress(Exception):
        container.remove(force=True, v=True)


def logs(container: Any, cap: int) -> tuple[str, bool]:
    """Its combined output, the last `cap` bytes at most, and whether the beginning was cut."""
    try:
        data = container.logs(stdout=True, stderr=True)
    except Exception:  # noqa: BLE001 - removed meanwhile: nothing more to read
        return "", False
    cut = len(data) > cap
    return data[-cap:].decode("utf-8", errors="replace"), cut
