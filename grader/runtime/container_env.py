"""The submission's environment for the docker runtime: a venv built inside a container of the app image.

The install is the only container that reaches the network (for the package index, trusting the host's CA
bundle), and on a bridge of its own (INSTALL_NETWORK): what a package runs at install time cannot reach the Redis
containers of other gradings on the engine's default bridge, which the engine keeps apart from other bridges.
The venv is built at the path the later containers see it at (containers.ENV_DIR), into a staging dir on the host
that is renamed into place once complete, and cached per (image id, requirements): the same requirements in the
same image build once. Every later container mounts it read-only, so no submission can change what another one
runs with.

The requirements are read by grader/environment.py (as text, never executed), exactly as for the local runtime.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from grader.environment import (
    ALWAYS,
    COMPLETE_MARKER,
    DEFAULT_PACKAGES,
    Environment,
    default_cache_dir,
    locked_cache_entry,
)
from grader.errors import GraderError
from grader.requirements import find_requirements, read_requirements
from grader.runtime import containers
from grader.tempdirs import remove_tree

CACHE_FORMAT = "1"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_CONTAINER = "/etc/redis-grader/ca-certificates.crt"
REQUIREMENTS = "requirements.redis-grader.txt"  # kept in the env: shows what it was built from
INSTALL_LIMITS = containers.Limits(memory="2g", pids=1024, cpus=2.0)
INSTALL_NETWORK = "redis-grader-install"

log = logging.getLogger(__name__)

# uv when the image has it, else the image's python3 -m venv and the venv's own pip (not externally managed).
_INSTALL_SCRIPT = f"""set -e
if command -v uv >/dev/null 2>&1; then
  uv venv --quiet --no-project "$ENV_DIR"
  uv pip install --python "$ENV_DIR/bin/python" -r "$ENV_DIR/{REQUIREMENTS}" "$@"
else
  python3 -m venv "$ENV_DIR"
  "$ENV_DIR/bin/python" -m pip install --quiet --no-input -r "$ENV_DIR/{REQUIREMENTS}" "$@"
fi
"""


def container_cache_dir() -> Path:
    return default_cache_dir().parent / "container-envs"


def _key(image_id: str, lines: list[str]) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, image_id, *ALWAYS, "\n", *lines):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:20]


def _pip_reason(output: str) -> str:
    """One line from pip's (or uv's) output: its last ERROR/error line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"(?i)error:", line)]
    return (errors or lines or ["the install failed without output"])[-1]


def prepare_container_env(
    client: Any, image: str, image_id: str, root: Path, cache_dir: Path | None = None, timeout: float = 600
) -> tuple[Environment, Path]:
    """The submission's venv for `image` (built in a container if not cached) and its directory on the host.
    The Environment's python is its path inside the containers."""
    files = find_requirements(root)
    reqs = read_requirements(files, root)
    lines = reqs.lines or list(DEFAULT_PACKAGES)
    found = ", ".join(str(path.relative_to(root)) for path in files)
    source = found if reqs.lines else (f"{found} lists no packages" if files else "no requirements file")
    key = _key(image_id, lines)
    cache = Path(cache_dir) if cache_dir is not None else container_cache_dir()
    started = time.monotonic()
    with locked_cache_entry(cache, key, timeout) as env_dir:
        if (env_dir / COMPLETE_MARKER).is_file():
            state = "cached"
        else:
            # A build can take a minute and would otherwise look like a hang; a reuse is silent.
            log.warning("building the environment for %s in %s (first use, cached afterwards) ...",
                        found if reqs.lines else "the default packages", image)
            _build(client, image, env_dir, lines, timeout)
            state = f"built in {time.monotonic() - started:.1f} s"
            log.warning("... %s", state)
    description = f"container venv {key[:6]} ({source}) in {image}, {state}"
    if reqs.ignored:
        description += "; ignored: " + ", ".join(reqs.ignored[:5])
    return Environment(containers.PYTHON, "container", description, list(reqs.ignored)), env_dir


def _build(client: Any, image: str, env_dir: Path, lines: list[str], timeout: float) -> None:
    cache = env_dir.parent
    for stale in cache.glob(f".build-{env_dir.name}-*"):  # left by a killed grader; we hold the lock
        remove_tree(stale)
    staging = cache / f".build-{env_dir.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / REQUIREMENTS).write_text("\n".join(lines) + "\n", encoding="utf-8")
        user = containers.USER if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
        if os.getuid() == 0:  # the unprivileged install user must own what it writes
            for path in (staging, staging / REQUIREMENTS):
                os.chown(path, 65534, 65534)
        _run_install(client, image, staging, user, timeout)
        (staging / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n", encoding="utf-8")
        if env_dir.exists():  # an incomplete earlier build
            remove_tree(env_dir)
        os.rename(staging, env_dir)
    finally:
        remove_tree(staging)


def install_network(client: Any) -> str:
    """The installs' own bridge network (INSTALL_NETWORK), made when the engine has none; the engine's default
    bridge when one cannot be made (an engine that refuses: installs still work, without the separation)."""
    import docker.errors

    for _ in range(2):
        try:
            client.networks.get(INSTALL_NETWORK)
            return INSTALL_NETWORK
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log.warning("cannot look up network %s: %s", INSTALL_NETWORK, exc)
            return "bridge"
        try:
            # check_duplicate: two graders making it at once get one network, not two of the same name.
            client.networks.create(INSTALL_NETWORK, driver="bridge", check_duplicate=True,
                                   labels={"redis-grader.network": "install"})
            return INSTALL_NETWORK
        except docker.errors.APIError as exc:  # made meanwhile by another grader (a conflict), or refused
            log.debug("making network %s: %s", INSTALL_NETWORK, exc)
    log.warning("cannot make network %s; the install runs on the default bridge", INSTALL_NETWORK)
    return "bridge"


def _run_install(client: Any, image: str, staging: Path, user: str, timeout: float) -> None:
    mounts = [containers.bind(staging, containers.ENV_DIR, read_only=False)]
    env = containers.environment(
        {"ENV_DIR": containers.ENV_DIR, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"}
    )
    if HOST_CA_BUNDLE.is_file():  # behind a proxy with its own CA, the package index is trusted only with it
        mounts.append(containers.bind(HOST_CA_BUNDLE, CA_IN_CONTAINER))
        env.update(PIP_CERT=CA_IN_CONTAINER, SSL_CERT_FILE=CA_IN_CONTAINER, UV_NATIVE_TLS="1")
    options = {key: value for key, value in containers.confined(INSTALL_LIMITS).items() if key != "detach"}
    options.update(user=user, network_mode=install_network(client))
    # Made, then started inside the try: a container the engine made but could not start is removed too.
    container = client.containers.create(
        image, ["/bin/sh", "-c", _INSTALL_SCRIPT, "install", *ALWAYS], mounts=mounts, environment=env, **options
    )
    try:
        container.start()
        try:
            code = container.wait(timeout=timeout)["StatusCode"]
        except Exception as exc:
            raise GraderError(f"could not install the submission's requirements: no result within {timeout:g} s") from exc
        if code != 0:
            output, _ = containers.logs(container, 64 * 1024)
            raise GraderError(f"could not install the submission's requirements: {_pip_reason(output)}")
    finally:
        containers.remove(container)
