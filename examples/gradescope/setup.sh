#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu).
# The autograder zip holds setup.sh, run_autograder, requirements.txt (the course's standard requirements)
# and redis-grader's source folder (or a wheel) at its root; Gradescope unpacks it to /autograder/source.
#
# Environment (for trying the scripts outside Gradescope; the defaults are Gradescope's layout):
#   AUTOGRADER_ROOT (default /autograder), REDIS_GRADER_VENV (default /opt/redis-grader: the grader's venv),
#   REDIS_GRADER_SKIP_INSTALL=1: the venv already holds the grader, only pre-build the environment.
set -euo pipefail

root="${AUTOGRADER_ROOT:-/autograder}"
venv="${REDIS_GRADER_VENV:-/opt/redis-grader}"
source_dir="$root/source"
# The same cache run_autograder reads (the environments and uv's own download cache live under it).
export XDG_CACHE_HOME="$root/cache"

if [ "${REDIS_GRADER_SKIP_INSTALL:-0}" != 1 ]; then
    apt-get update
    # redis-server: there is no Docker engine inside Gradescope's container, so the grader starts a local
    # redis-server for each submission (its embedded backend). python3-venv: the grader and uv live in a venv.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip redis-server

    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --upgrade pip
    if compgen -G "$source_dir/redis_grader-*.whl" > /dev/null; then
        "$venv/bin/python" -m pip install "$source_dir"/redis_grader-*.whl
    else
        "$venv/bin/python" -m pip install "$source_dir/redis-grader"
    fi
    "$venv/bin/grader" --help > /dev/null  # fails the image build if the install is broken
fi

# Build the course's standard environment now, while the image builder has network: the cache key is the
# requirements' content, so every submission that keeps the standard requirements finds it ready and
# run_autograder installs nothing.
standard="$(mktemp -d)"
trap 'rm -rf "$standard"' EXIT
cp "$source_dir/requirements.txt" "$standard/requirements.txt"
"$venv/bin/python" - "$standard" <<'PY'
import sys
from pathlib import Path

from grader.environment import prepare_environment

env = prepare_environment(Path(sys.argv[1]), timeout=900)
print(f"redis-grader: standard environment ready: {env.description}")
PY
