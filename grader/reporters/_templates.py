"""The Jinja2 environment the Markdown and HTML reports share: templates from grader.resources.templates_dir(),
autoescape on for *.html.j2 (off for Markdown, which escapes with its own filters below)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from ..resources import templates_dir
from ..text import clip_line
from ._common import Check, Link, fmt_num, head_tail, more_text, read_result
from .figures import figure_kind, render_figure
from .quiz import template_context

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")
# GitHub turns a bare `http://...` or `www.x` in text into a link: a submission's text (a key, a body) would be a
# link in the instructor's job summary. Escaped, the colon or the dot shows as itself and links nothing.
_AUTOLINKS = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=\bwww)(\.)")


def _md_escaped(text: str) -> str:
    return _AUTOLINKS.sub(lambda m: "\\" + m.group(0), _MD_SPECIAL.sub(r"\\\1", text))
# Hints and messages are written with Markdown-ish backticks around code (`rate:ip:<ip>`): a span is a pair of
# single backticks on one line with something inside (a run of two or more is left as it is).
_CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def html_code(value: Any) -> Markup:
    """Text with its `code` spans as <code> elements; everything else escaped (autoescape sees Markup)."""
    text = str(value)
    parts: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(str(escape(text[last : match.start()])))
        parts.append(f"<code>{escape(match.group(1))}</code>")
        last = match.end()
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts))


def md_rich(value: Any, table: bool = False) -> str:
    """Like md_text, but the text's own `code` spans stay code spans (md_text escapes pipes already; a span's
    pipes are escaped inside a table)."""
    text = " ".join(str(value).split())
    parts: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(_md_escaped(text[last : match.start()]))  # spaces around a span kept
        parts.append(md_code(match.group(1), table=table))
        last = match.end()
    parts.append(_md_escaped(text[last:]))
    return "".join(parts)


def md_text(value: Any) -> str:
    """Plain text made inert in Markdown: one line, punctuation that Markdown or HTML would act on escaped."""
    return _md_escaped(" ".join(str(value).split()))


def md_code(value: Any, table: bool = False) -> str:
    """An inline code span that survives backticks in the text (and pipes, inside a table)."""
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    # GitHub splits table cells on every unescaped pipe, even inside code spans.
    return span.replace("|", "\\|") if table else span


def md_block(value: Any) -> str:
    """A fenced code block whose fence is longer than any backtick run in the text."""
    text = str(value).rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def md_link(link: Link) -> str:
    if not link.url:
        return md_text(link.title)
    url = link.url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{md_text(link.title)}]({url})"


def tail_lines(text: str, keep: int) -> str:
    """The last `keep` lines of a long text (a log's end is where the error is), each cut to a readable width."""
    lines = text.splitlines()
    hidden = [more_text(len(lines) - keep, "lines above")] if len(lines) > keep else []
    return "\n".join([*hidden, *(clip_line(line) for line in lines[-keep:])])


def figure_svg(check: Check) -> Markup:
    """The check's figure as inline SVG ("" when it has none this grader can draw). ElementTree wrote it and
    escaped every string of the document in it, so it goes into the page as markup. A figure too odd to draw
    costs its picture, never the report (tests/test_figures_svg.py draws odd figures directly, where it shows)."""
    try:
        return Markup(render_figure(check.figure, check.id))
    except (ArithmeticError, LookupError, TypeError, ValueError):
        return Markup("")


def is_drawn(check: Check) -> bool:
    """Whether the check has a figure the HTML report draws."""
    return figure_kind(check.figure) is not None


def check_href(check: Check, page: str) -> str:
    """A link to the check's place in the HTML report at `page` (a path relative to the Markdown file)."""
    return quote(page, safe="/") + "#" + quote(f"check-{check.id}", safe="")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
        undefined=StrictUndefined,  # a typo in a template fails the tests instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=fmt_num, md_text=md_text, md_code=md_code, md_block=md_block, md_link=md_link,
        head_tail=head_tail, tail_lines=tail_lines, clip_line=clip_line, html_code=html_code, md_rich=md_rich,
        figure_svg=figure_svg, check_href=check_href,
    )
    env.tests["drawn"] = is_drawn
    return env


def render(template: str, result: dict[str, Any], **extra: Any) -> str:
    return environment().get_template(template).render(report=read_result(result), **template_context(result),
                                                       **extra)
