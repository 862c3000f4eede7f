#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu).
# The autograder zip holds setup.sh, run_autograder and redis-grader's source folder (or a wheel) at its
# root; Gradescope unpacks it to /autograder/source.
set -euo pipefail

apt-get update
# redis-server: there is no Docker engine inside Gradescope's container, so the grader starts a local
# redis-server for each submission (its embedded backend). python3-venv: the grader and uv live in a venv.
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip redis-server

python3 -m venv /opt/redis-grader
/opt/redis-grader/bin/python -m pip install --upgrade pip
if compgen -G "/autograder/source/redis_grader-*.whl" > /dev/null; then
    /opt/redis-grader/bin/python -m pip install /autograder/source/redis_grader-*.whl
else
    /opt/redis-grader/bin/python -m pip install /autograder/source/redis-grader
fi
/opt/redis-grader/bin/grader --help > /dev/null  # fails the image build if the install is broken
