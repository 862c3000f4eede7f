"""Leaves a detached grandchild behind: fork, setsid, fork again. The grandchild ignores SIGTERM,
writes its pid to argv[1] and sleeps forever; the parent sleeps too."""

import os
import signal
import sys
import time

if os.fork() == 0:
    os.setsid()  # leaves the sandbox's session and process group
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tmp = sys.argv[1] + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(tmp, sys.argv[1])  # atomic: the test never reads a half-written pid
        while True:
            time.sleep(1)
    os._exit(0)
print("parent: grandchild started", flush=True)
time.sleep(600)
