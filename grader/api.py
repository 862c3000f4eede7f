"""Everything a check needs, in one place: the only module of the engine that checks (built-in or plugin) import.

    from grader.api import CheckContext, CheckOutcome, check, failed, passed

See docs/writing-a-check.md for a walk-through, and docs/checks.md for the built-in checks.
"""

from __future__ import annotations

from grader.checking import (
    Check,
    CheckContext,
    CheckSettings,
    ProxyControl,
    Recording,
    SubmissionFiles,
    TraceView,
    check,
    decided_by_runner,
)
from grader.checksupport import (
    EXPIRES,
    MAX_EVIDENCE,
    SCRIPTS,
    WRITES,
    Field,
    all_keys,
    burst,
    commands_text,
    crossed_minute,
    declared_routes,
    first_status,
    keys_of,
    missing_route,
    openapi_operation,
    operation_fields,
    points_at,
    raw_value,
    request_parts,
    requests_text,
    shown_bytes,
    strings_in,
    value_text,
    writes_to,
)
from grader.figures import (
    ExpirySeen,
    Figure,
    Moment,
    command_label,
    command_shape,
    countdown_figure,
    event_loop_figure,
    first_moment,
    race_figure,
    request_moment,
    request_shape,
    round_trip_groups,
    round_trips_figure,
    stampede_figure,
    ttl_moment,
    ttl_seconds,
)
from grader.jsondata import parse_json
from grader.openapi import resolve
from grader.outcome import CheckOutcome, Outcome, error, failed, passed, skipped
from grader.probe import Probe, Reply, VirtualClient
from grader.proxy import Command, Fault
from grader.registry import PLUGIN_GROUP, Registry
from grader.sandbox import CompletedRun
from grader.sources import is_test_file, python_files
from grader.static import Finding, StaticFacts
from grader.static.imports import app_imports
from grader.text import more_text

__all__ = [
    "EXPIRES",
    "MAX_EVIDENCE",
    "PLUGIN_GROUP",
    "SCRIPTS",
    "WRITES",
    "Check",
    "CheckContext",
    "CheckOutcome",
    "CheckSettings",
    "Command",
    "CompletedRun",
    "ExpirySeen",
    "Fault",
    "Field",
    "Figure",
    "Finding",
    "Moment",
    "Outcome",
    "Probe",
    "ProxyControl",
    "Recording",
    "Registry",
    "Reply",
    "StaticFacts",
    "SubmissionFiles",
    "TraceView",
    "VirtualClient",
    "all_keys",
    "app_imports",
    "burst",
    "check",
    "command_label",
    "command_shape",
    "commands_text",
    "countdown_figure",
    "crossed_minute",
    "decided_by_runner",
    "declared_routes",
    "error",
    "event_loop_figure",
    "failed",
    "first_moment",
    "first_status",
    "is_test_file",
    "keys_of",
    "missing_route",
    "more_text",
    "openapi_operation",
    "operation_fields",
    "parse_json",
    "passed",
    "points_at",
    "python_files",
    "race_figure",
    "raw_value",
    "request_moment",
    "request_parts",
    "request_shape",
    "requests_text",
    "resolve",
    "round_trip_groups",
    "round_trips_figure",
    "shown_bytes",
    "skipped",
    "stampede_figure",
    "strings_in",
    "ttl_moment",
    "ttl_seconds",
    "value_text",
    "writes_to",
]
