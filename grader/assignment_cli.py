"""`grader assignment`: the published assignment, generated from the rubric and the checks' requirements."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli_support import fail, write_output
from grader.errors import GraderError, UsageError


@click.command("assignment")
@click.option("--rubric", default="redis-module", show_default=True, help="Rubric name or path.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Also write it as an HTML page here.")
@click.option("--readme", "readme_path", type=click.Path(path_type=Path, exists=True),
              help="Regenerate this README's block between <!-- assignment:start --> and <!-- assignment:end -->.")
def assignment(rubric: str, html_path: Path | None, readme_path: Path | None) -> None:
    """Print what the app must do, every scored requirement in the student's words (Markdown)."""
    from grader import assignment as published

    try:
        built = published.load(rubric)
    except GraderError as exc:
        fail(exc)
    click.echo(published.markdown(built), nl=False)
    if html_path is not None:
        write_output(html_path, published.html(built))
    if readme_path is not None:
        try:
            changed = published.write_readme(readme_path, built)
        except ValueError as exc:
            fail(UsageError(str(exc)))
        except OSError as exc:
            fail(UsageError(f"cannot update {readme_path}: {exc.strerror or exc}"))
        click.echo(f"{readme_path}: {'updated' if changed else 'already up to date'}", err=True)
