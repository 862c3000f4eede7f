"""Runs INSIDE the submission's container (standard library only): a Redis relay, then the submission's program.

    python relay.py UNIX_SOCKET PORT -- PROGRAM ARGS...

The container has no network at all; the grader listens on UNIX_SOCKET (a host directory mounted into the
container) and forwards to its RESP proxy. This script listens on 127.0.0.1:PORT inside the container, where
REDIS_URL points, and pipes each connection to UNIX_SOCKET; then it runs PROGRAM, passes it SIGTERM/SIGINT, and
exits with its exit code. The listener is bound before PROGRAM starts, so the app never finds Redis missing.
"""

import os
import signal
import socket
import subprocess
import sys
import threading


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):  # one side gone: the connection is over in both directions
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _connection(client: socket.socket, unix_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(unix_path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, unix_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_connection, args=(client, unix_path), daemon=True).start()


def main(argv: list) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: relay.py UNIX_SOCKET PORT -- PROGRAM ARGS...\n")
        return 2
    unix_path, port, program = argv[0], int(argv[1]), argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    threading.Thread(target=_serve, args=(listener, unix_path), daemon=True).start()
    try:
        child = subprocess.Popen(program)  # the listener is not inherited (sockets are non-inheritable)
    except OSError as exc:
        sys.stderr.write(f"cannot run {program[0]!r}: {exc.strerror or exc}\n")
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: child.send_signal(signum))
    code = child.wait()
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell reports it


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(sys.argv[1:]))
