"""Which of an unpacked image's folders a container of its skeleton gets mounted (grader/runtime/image_root.py):
every top-level folder read-only, except those the engine or the runtime mount themselves, and the children of
the folders that hold the runtime's own mounts, one by one. No engine needed."""

from __future__ import annotations

from pathlib import Path

from grader.runtime.image_root import _mounts


def test_the_image_folders_are_mounted_read_only_around_the_runtime_own(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    for folder in ("usr/bin", "etc", "var/lib", "dev", "proc", "sys", "tmp", "opt/vendor", "run/lock", "home"):
        (root / folder).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr: the skeleton keeps the link, nothing is mounted there
    (root / "opt" / "readme.txt").write_text("a file of the image's /opt")
    (root / "run" / "shm").symlink_to("/dev/shm")
    (root / ".dockerenv").write_text("")

    mounts = {m["Target"]: m for m in _mounts(root)}

    assert sorted(mounts) == ["/etc", "/home", "/opt/readme.txt", "/opt/vendor", "/run/lock", "/usr", "/var"]
    assert all(m["ReadOnly"] and m["Type"] == "bind" for m in mounts.values())
    assert mounts["/usr"]["Source"] == str(root / "usr")
