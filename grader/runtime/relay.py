"""Runs INSIDE the submission's container (standard library only): a Redis relay, then the submission's program.

    python relay.py UNIX_SOCKET PORT --job JOB_FILE [--copy SOURCE TARGET]

The container has no network at all; the grader listens on UNIX_SOCKET (a host directory mounted into the
container) and forwards to its RESP proxy. This script listens on 127.0.0.1:PORT inside the container, where
REDIS_URL points, and pipes each connection to UNIX_SOCKET. Then it waits for JOB_FILE, a JSON object
{"argv": [...], "cwd": "...", "env": {...}} the grader writes once it knows what to run (so the container can be
created ahead of time), runs it, passes it SIGTERM/SIGINT, ends whatever it left behind in its process group,
and exits with its exit code. It reaps every orphan meanwhile, as the container's first process must.

With --copy it first copies the folder SOURCE into TARGET (an empty scratch file system): a private, writable
copy of the submission for a command that writes into its own folder, while SOURCE stays read-only.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unix_path: str) -> None:
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(unix_path)
    except OSError:
        writer.close()
        return
    pumps = [asyncio.ensure_future(_pump(reader, up_writer)), asyncio.ensure_future(_pump(up_reader, writer))]
    # One side gone: the connection is over in both directions.
    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    for pump in pumps:
        pump.cancel()
    writer.close()
    up_writer.close()


def _serve(listener: socket.socket, unix_path: str) -> None:
    """Every connection in one thread (an asyncio loop): the container's pids limit counts threads, and an app
    may open many Redis connections."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        asyncio.start_server(lambda r, w: _connection(r, w, unix_path), sock=listener)
    )
    loop.run_until_complete(server.serve_forever())  # until the container ends


def _job(path: str) -> dict:
    while not os.path.exists(path):  # the grader renames it into place complete
        time.sleep(0.02)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _copy_into(source: str, target: str) -> None:
    """SOURCE's contents into the folder TARGET, entry by entry (TARGET itself, a mount point, is not ours to
    change)."""
    for entry in os.scandir(source):
        to = os.path.join(target, entry.name)
        try:
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), to)
            elif entry.is_dir():
                shutil.copytree(entry.path, to, symlinks=True)
            else:
                shutil.copy2(entry.path, to)
        except (shutil.Error, OSError) as exc:  # what could be copied was: the command runs with it
            sys.stderr.write(f"relay: {entry.name} was not copied whole: {exc}\n")


def main(argv: list) -> int:
    if len(argv) not in (4, 7) or argv[2] != "--job" or argv[4:5] not in ([], ["--copy"]):
        sys.stderr.write("usage: relay.py UNIX_SOCKET PORT --job JOB_FILE [--copy SOURCE TARGET]\n")
        return 2
    unix_path, port, job_file = argv[0], int(argv[1]), argv[3]
    if len(argv) == 7:  # while the grader has nothing for it to run yet
        _copy_into(argv[5], argv[6])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    threading.Thread(target=_serve, args=(listener, unix_path), daemon=True).start()
    job = _job(job_file)
    program = job["argv"]
    try:
        # Its own process group, so what it leaves behind can be ended with it. The listener is not inherited.
        child = subprocess.Popen(program, cwd=job["cwd"], env={**os.environ, **job["env"]}, start_new_session=True)
    except OSError as exc:
        sys.stderr.write(f"cannot run {program[0]!r}: {exc.strerror or exc}\n")
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: _signal_group(child.pid, signum))
    code = _reap_until(child.pid)
    _signal_group(child.pid, signal.SIGKILL)
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell reports it


def _reap_until(pid: int) -> int:
    """Wait for `pid`, reaping every other process that ends meanwhile (orphans are the first process's to
    reap); its exit code, or -N if signal N killed it."""
    while True:
        try:
            ended, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return -signal.SIGKILL
        except InterruptedError:
            continue
        if ended == pid:
            return os.waitstatus_to_exitcode(status)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(sys.argv[1:]))
