"""The fork server's process (grader/batch/forkserver.py): `python -m grader.batch.forks <channel fd> <max message>`.

serve() returns only in a forked child (or None once the batch is gone): the child leaves the loop and runs
`grader check` at the top level of this module, exactly as a child started afresh runs it, so its exit (SystemExit,
threads joined, atexit) is that of a fresh process.
"""

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys
import threading


def reap(channel: socket.socket) -> None:
    """Report the exit code of every child that has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def serve(channel: socket.socket, max_message: int) -> tuple[dict, list[int]] | None:
    """Fork a child per request; in the child, its request and descriptors (output, result)."""
    poller = select.poll()
    poller.register(channel, select.POLLIN)
    while True:
        readable = poller.poll(20)
        reap(channel)
        if not readable:
            continue
        message, fds, _, _ = socket.recv_fds(channel, max_message, 2)
        if not message:
            return None  # the batch closed the channel, or is gone
        request = json.loads(message)
        set_up, child_is_set_up = os.pipe()
        pid = os.fork()
        if pid == 0:
            # Before the batch learns the pid: from then on it may stop the child with SIGINT to its session.
            os.setsid()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.close(set_up)
            os.close(child_is_set_up)
            return request, fds
        os.close(child_is_set_up)
        os.read(set_up, 1)  # end of file once the child closed its end (or died)
        os.close(set_up)
        for fd in fds:
            os.close(fd)
        channel.send(json.dumps({"id": request["id"], "pid": pid}).encode())


def become_child(output: int, result: int, result_fd: int, env: dict[str, str]) -> None:
    """The descriptors and environment of a child the supervisor would have started: /dev/null in, `output` out,
    `result` as `result_fd` (above 2), nothing else open; `env` as its whole environment."""
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(result, result_fd)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, os.sysconf("SC_OPEN_MAX"))
    os.environ.clear()
    os.environ.update(env)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to relay, child by child
    with contextlib.suppress(OSError, AttributeError):  # no libc prctl: dumpable, as a child started afresh
        ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE 0, inherited by every child it forks
    channel = socket.socket(fileno=int(sys.argv[1]))
    try:
        from grader.batch.forkserver import CHILD_RESULT_FD, preload

        preload()
        if threading.active_count() != 1:  # a thread would be copied into every child half-way through its work
            raise RuntimeError(f"{threading.active_count()} threads after the imports")
    except BaseException as exc:  # noqa: BLE001 - whatever stops the imports, the batch starts children afresh
        channel.send(json.dumps({"failed": f"{type(exc).__name__}: {exc}"}).encode())
        sys.exit(1)
    channel.send(b'{"ready": true}')
    served = serve(channel, int(sys.argv[2]))
    if served is None:
        sys.exit(0)
    channel.close()
    request, (output, result) = served
    become_child(output, result, CHILD_RESULT_FD, request["env"])
    from grader.cli import main

    main(request["argv"], prog_name="grader")
