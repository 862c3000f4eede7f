"""Reading Linux's /proc: the one place the grader looks at other processes.

Everything here tolerates processes that vanish between two reads (they do, all the time): a process that is
gone, or not ours to read, is simply not reported.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    pgid: int
    sid: int
    start_ticks: int  # since boot: with the pid, names one process and never a later one that got the same pid
    # Processor time used so far, in clock ticks (1/100 s): user and system, of all its threads and of the children
    # it has waited for. It grows only while the process works, by one tick per 10 ms of work.
    cpu_ticks: int = 0

    @property
    def alive(self) -> bool:
        """Running or sleeping; a zombie is dead, only not yet reaped by its parent."""
        return self.state not in ("Z", "X")


def stat(pid: int) -> ProcStat | None:
    """`/proc/<pid>/stat`, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        cpu = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        return ProcStat(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]), cpu)
    except (IndexError, ValueError):
        return None


def pids() -> list[int]:
    """Every pid in /proc right now (some may be gone by the time they are read)."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def live_processes() -> dict[int, ProcStat]:
    """pid -> stat of every live (not zombie) process."""
    found = {}
    for pid in pids():
        info = stat(pid)
        if info is not None and info.alive:
            found[pid] = info
    return found


def environ(pid: int) -> bytes:
    """The process's environment as NUL-framed bytes (b"\\0A=1\\0B=2\\0"), so a `b"\\0NAME=value\\0"` needle
    matches whole entries only; b"" when it is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return b"\0" + fh.read() + b"\0"
    except OSError:
        return b""


def has_env_entry(pid: int, name: str, value: str) -> bool:
    return f"\0{name}={value}\0".encode() in environ(pid)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def identity(pid: int) -> str | None:
    """host/boot/pid/start time: one process on one machine, never a later one that got the same pid.
    None when it is gone."""
    info = stat(pid)
    if info is None or not info.alive:
        return None
    return f"{socket.gethostname()}/{boot_id()}/{pid}/{info.start_ticks}"


def identity_gone(owner: str) -> bool:
    """Whether the process an identity names is gone. One of another machine or boot, or an unreadable one, is
    never judged gone: what it owns is not ours to remove."""
    parts = owner.split("/")
    if len(parts) != 4 or parts[:2] != [socket.gethostname(), boot_id()] or not parts[2].isdigit():
        return False
    return identity(int(parts[2])) != owner


# cgroup v1 names the hierarchy after its controllers, mounted at /sys/fs/cgroup/<controllers>; v2 has one
# hierarchy, mounted at /sys/fs/cgroup (or at /sys/fs/cgroup/unified beside v1's). Each: where, which file, ns per unit.
_CGROUP_CPU_FILES = (
    ("cpuacct", "cpuacct.usage", 1),
    ("cpu,cpuacct", "cpuacct.usage", 1),
    ("", "cpu.stat", 1000),
    ("unified", "cpu.stat", 1000),
)


def cgroup_cpu_ns(pid: int, must_contain: str) -> int | None:
    """Processor time used so far by every process of the cgroup `pid` is in (a container's), in nanoseconds.
    None when it cannot be read here (no such process, no cgroup file mounted where this machine keeps them), or
    when the cgroup's path does not contain `must_contain` (the container's id): a pid the engine reports from
    another pid namespace names some other process here."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    paths = [line.split(":", 2)[2].lstrip("/") for line in lines if line.count(":") >= 2]
    for path in (path for path in paths if must_contain in path):
        for mount, name, unit_ns in _CGROUP_CPU_FILES:
            try:
                text = (Path("/sys/fs/cgroup") / mount / path / name).read_text()
            except OSError:
                continue
            if name == "cpu.stat":  # "usage_usec 1234\nuser_usec ..."
                text = next((line.split()[1] for line in text.splitlines() if line.startswith("usage_usec ")), "")
            if text.strip().isdigit():
                return int(text) * unit_ns
    return None
