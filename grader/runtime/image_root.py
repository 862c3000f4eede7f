"""The app image's file system, unpacked once on the host and mounted read-only into every container.

An engine with the `vfs` storage driver copies the whole image for each container it creates: 10-30 s for a
Python image on a busy machine, and about as long again to delete the copy. A container whose image is nearly
empty costs a fraction of a second. So, on such an engine, the app image is unpacked once per image id into the
cache (beside the container venvs) and each container is made of a *skeleton* image (the image's top-level
symlinks and empty folders, no files) with the image's folders bind-mounted read-only over it. What runs inside
sees the same files as in a container of the image itself, with the same read-only root; the image's own
environment variables are passed on, as the engine would. Engines with a copy-on-write driver (overlay2, ...)
create containers cheaply and use the image directly.

The unpacked files are shared by every grading with that image, read-only for all of them: no submission can
change what another one runs with.
"""

from __future__ import annotations

import io
import logging
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.environment import COMPLETE_MARKER, default_cache_dir, locked_cache_entry
from grader.errors import GraderError
from grader.runtime import containers
from grader.tempdirs import remove_tree

CACHE_FORMAT = "1"
COPYING_DRIVERS = ("vfs",)  # storage drivers that copy the image's files into each container
SKELETON_REPOSITORY = "redis-grader-skeleton"
# Mounted by the engine itself (/proc, /sys, /dev) or by the runtime (/tmp is scratch space).
NOT_MOUNTED = frozenset({"dev", "proc", "sys", "tmp"})
# Folders holding the runtime's own mounts (containers.ENV_DIR, RELAY, SOCKETS): their children are mounted one
# by one, the runtime's own names left out, so that the engine can make the runtime's mount points in them.
MOUNTED_BY_CHILD = {"opt": containers.ENV_DIR.split("/")[2], "run": containers.SOCKETS.split("/")[2]}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MountedRoot:
    """How to make a container that sees `image`'s files: create it from `skeleton` with `mounts`."""

    skeleton: str  # the skeleton image's tag
    mounts: list[Any] = field(default_factory=list)  # docker.types.Mount, read-only binds
    env: dict[str, str] = field(default_factory=dict)  # the image's own environment variables


def copies_images(client: Any) -> bool:
    """Whether this engine copies the image's files into each container it creates (vfs)."""
    try:
        return str(client.info().get("Driver", "")) in COPYING_DRIVERS
    except Exception:  # noqa: BLE001 - an engine that does not say: use the image directly
        return False


def root_cache_dir() -> Path:
    return default_cache_dir().parent / "container-roots"


def mounted_root(client: Any, image: str, image_id: str, cache_dir: Path | None = None,
                 timeout: float = 600) -> MountedRoot:  # fmt: skip
    """The unpacked files of `image` (unpacked now on first use) and its skeleton image (made if missing)."""
    key = f"{CACHE_FORMAT}-{image_id.removeprefix('sha256:')[:16]}"
    cache = Path(cache_dir) if cache_dir is not None else root_cache_dir()
    with locked_cache_entry(cache, key, timeout) as entry:
        if not (entry / COMPLETE_MARKER).is_file():
            started = time.monotonic()
            log.warning("unpacking %s once, so that its containers are quick to make ...", image)
            _unpack(client, image, entry)
            log.warning("... unpacked in %.1f s", time.monotonic() - started)
        root = entry / "rootfs"
        skeleton = f"{SKELETON_REPOSITORY}:{key}"
        _ensure_skeleton(client, skeleton, root)
    return MountedRoot(skeleton, _mounts(root), _image_env(client, image_id))


def _unpack(client: Any, image: str, entry: Path) -> None:
    """`image`'s files into entry/rootfs, whole or not at all (a staging folder renamed into place)."""
    cache = entry.parent
    for stale in cache.glob(f".unpack-{entry.name}-*"):  # left by a killed grader; we hold the lock
        remove_tree(stale)
    staging = cache / f".unpack-{entry.name}-{uuid.uuid4().hex[:8]}"
    (staging / "rootfs").mkdir(parents=True)
    container = client.containers.create(image, ["true"], network_mode="none", labels=containers.labels())
    try:
        _export(container, staging / "rootfs")
        (staging / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n", encoding="utf-8")
        if entry.exists():  # an incomplete earlier attempt
            remove_tree(entry)
        staging.rename(entry)
    finally:
        containers.remove(container)
        remove_tree(staging)


def _export(container: Any, target: Path) -> None:
    # GNU tar keeps owners and modes (as root) and refuses members that would land outside `target`; the kernel's
    # own folders are left empty (their device files cannot be made without privileges, and are never mounted).
    tar = subprocess.Popen(
        ["tar", "-x", "-C", str(target), "--exclude=dev/*", "--exclude=proc/*", "--exclude=sys/*"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert tar.stdin is not None
    try:
        for chunk in container.export():
            tar.stdin.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        tar.stdin.close()
    errors = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
    if tar.wait() != 0:
        raise GraderError(f"cannot unpack the app image: {errors.strip().splitlines()[-1:] or 'tar failed'}")


def _ensure_skeleton(client: Any, tag: str, root: Path) -> None:
    """An image with `root`'s top-level symlinks and an empty folder for each of its top-level folders (and the
    same one level down in the folders mounted child by child)."""
    import docker.errors

    try:
        client.images.get(tag)
        return
    except docker.errors.ImageNotFound:
        pass
    data = io.BytesIO()
    layout = [path for path in sorted(root.iterdir()) if path.is_symlink() or path.is_dir()]
    layout += [child for name in MOUNTED_BY_CHILD if (root / name).is_dir() and not (root / name).is_symlink()
               for child in sorted((root / name).iterdir()) if child.is_symlink()]  # fmt: skip
    with tarfile.open(fileobj=data, mode="w") as tar:
        for path in layout:
            info = tarfile.TarInfo(str(path.relative_to(root)))
            if path.is_symlink():
                info.type, info.linkname = tarfile.SYMTYPE, str(path.readlink())
            else:
                info.type, info.mode = tarfile.DIRTYPE, path.stat().st_mode & 0o7777
            info.mtime = int(time.time())
            tar.addfile(info)
    repository, _, name = tag.partition(":")
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag=name)


def _mounts(root: Path) -> list[Any]:
    mounts = []
    for path in sorted(root.iterdir()):
        if path.is_symlink() or not path.is_dir() or path.name in NOT_MOUNTED:
            continue
        if path.name in MOUNTED_BY_CHILD:
            own = MOUNTED_BY_CHILD[path.name]
            mounts += [containers.bind(child, f"/{path.name}/{child.name}") for child in sorted(path.iterdir())
                       if child.name != own and not child.is_symlink()]  # fmt: skip
        else:
            mounts.append(containers.bind(path, f"/{path.name}"))
    return mounts


def _image_env(client: Any, image_id: str) -> dict[str, str]:
    config = client.images.get(image_id).attrs.get("Config") or {}
    pairs = (item.partition("=") for item in config.get("Env") or [])
    return {name: value for name, _, value in pairs if name}
