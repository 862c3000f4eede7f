"""Wording shared by the checks' evidence and the reports, so that both say things the same way."""

from __future__ import annotations

from collections.abc import Sequence


def more_text(hidden: int, what: str = "") -> str:
    """The one way evidence and reports say entries were left out: "… and 3 more", "… and 3 more log lines"."""
    return f"… and {hidden} more" + (f" {what}" if what else "")


def first_items(items: Sequence[str], limit: int) -> list[str]:
    """At most `limit` items, then a "… and N more" line for the rest."""
    if len(items) <= limit:
        return list(items)
    return [*items[:limit], more_text(len(items) - limit)]
