"""`grader assignment`: the published assignment, generated from the rubric and the checks' requirements."""

from __future__ import annotations

from pathlib import Path

import click

from grader.errors import GraderError


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
        raise click.ClickException(str(exc)) from None
    click.echo(published.markdown(built), nl=False)
    if html_path is not None:
        html_path.write_text(published.html(built), encoding="utf-8")
    if readme_path is not None:
        try:
            changed = published.write_readme(readme_path, built)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{readme_path}: {'updated' if changed else 'already up to date'}", err=True)
