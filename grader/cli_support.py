"""What every command does alike: a user's mistake or the harness's failure as one line with its exit code
(DESIGN.md §6), and an output file written or refused in one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from grader.errors import GraderError, cannot_write
from grader.text import printable_line


def fail(exc: GraderError) -> NoReturn:
    click.echo(f"grader: error: {printable_line(str(exc))}", err=True)  # one line: it may name a submission's file
    sys.exit(exc.exit_code)


def write_output(path: Path, text: str) -> None:
    """Write a file the user asked for (missing parent folders are created), or fail with one line (exit 2)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(cannot_write(path, exc))
