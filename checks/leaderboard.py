"""POST /score keeps points in a Sorted Set; GET /top returns the 3 best, highest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.api import (
    WRITES,
    CheckContext,
    CheckOutcome,
    CheckSettings,
    Command,
    Field,
    Figure,
    check,
    commands_text,
    failed,
    missing_route,
    openapi_operation,
    operation_fields,
    passed,
    points_at,
    request_parts,
    requests_text,
    resolve,
    round_trip_groups,
    round_trips_figure,
)

SCORE = "/score"
TOP = "/top"
ZSET_WRITES = {"ZADD", "ZINCRBY"}
USER_NAMES = ("user", "username", "user_id", "userid", "name", "player", "member", "nickname", "login")
SCORE_NAMES = ("score", "points", "value", "delta", "increment", "amount")


@dataclass(frozen=True)
class ScoreFields:
    user: str
    score: str
    how: str  # where the names came from, for the evidence
    inputs: tuple[Field, ...] = ()  # where each input travels: a JSON body, the query string, a form
    numeric_user: bool = False  # players are numbers (`user_id: int`), not names

    def player(self, tag: str) -> str | int:
        """A player no other request of the grading names: "rg-alice-1a2b3c", or a number when players are ids."""
        if self.numeric_user:
            return 900_000_000 + uuid.uuid4().int % 100_000_000
        return f"rg-{tag}-{uuid.uuid4().hex[:6]}"

    def request(self, values: dict[str, Any]) -> dict[str, Any]:
        """httpx keyword arguments sending `values` the way POST /score declares them (json=, params=, data=)."""
        return request_parts(self.inputs, values)

    def shown(self, values: dict[str, Any]) -> str:
        """The request as a student would write it: `?player=x&points=42`, a form or a JSON body."""
        parts = self.request(values)
        if "params" in parts and len(parts) == 1:
            return "?" + "&".join(f"{k}={v}" for k, v in parts["params"].items())
        return " ".join(f"{'form' if k == 'data' else k} {v}" for k, v in parts.items())


def _kind(schema: dict[str, Any], openapi: dict[str, Any]) -> str:
    types = [schema.get("type")] + [resolve(p, openapi).get("type") for p in schema.get("anyOf", [])]
    return "number" if {"number", "integer"} & set(types) else "string" if "string" in types else "other"


def score_fields(openapi: dict[str, Any]) -> ScoreFields:
    """The input names of POST /score (user and points, whatever they are called), read from the app's own
    /openapi.json wherever it declares them: a JSON body, query parameters or form fields."""
    operation = openapi_operation(openapi, "post", SCORE)
    inputs = tuple(operation_fields(openapi, operation)) if operation else ()
    if not inputs:
        return ScoreFields("user", "score", f"defaults (POST {SCORE} declares no input in /openapi.json)")

    def pick(names: tuple[str, ...], wanted: str) -> str | None:
        typed = [f.name for f in inputs if _kind(f.schema, openapi) == wanted]
        return next((p for n in names for p in typed if p.lower() == n), typed[0] if len(typed) == 1 else None)

    user, points = pick(USER_NAMES, "string"), pick(SCORE_NAMES, "number")
    # No text field for the player, but a number named like one (`user_id: int`): players are ids.
    numbers = [f.name for f in inputs if _kind(f.schema, openapi) == "number" and f.name != points]
    user_id = None if user else next((p for n in USER_NAMES for p in numbers if p.lower() == n), None)
    where = "/".join(sorted({"JSON body" if f.where == "json" else f.where for f in inputs}))
    declared = sorted(f.name for f in inputs)
    if (user or user_id) and points:
        return ScoreFields(user or user_id or "user", points, f"/openapi.json: POST {SCORE} takes {declared} ({where})",
                           inputs, numeric_user=user_id is not None)
    return ScoreFields(user or "user", points or "score", f"partly guessed from {declared} ({where})", inputs)


def top_entries(body: Any) -> list[tuple[str, float]] | None:
    """(user, score) pairs from GET /top in any common shape: [{"user":..,"score":..}], [[user, score]],
    {"top": [...]}, {user: score}. None when the shape is not recognised."""
    if isinstance(body, dict):
        lists = [v for v in body.values() if isinstance(v, list)]
        if len(lists) == 1:
            return top_entries(lists[0])
        if body and all(isinstance(v, (int, float)) for v in body.values()):
            return [(str(k), float(v)) for k, v in body.items()]
        return None
    if not isinstance(body, list):
        return None
    entries = []
    for item in body:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            entries.append((str(item[0]), float(item[1])))
        elif isinstance(item, dict) and len(item) == 1 and _is_points(next(iter(item.values()))):
            (name, points), = item.items()  # {"alice": 90}
            entries.append((str(name), float(points)))
        elif isinstance(item, dict):
            names = [v for k, v in item.items() if isinstance(v, str)]
            ids = [] if names else [k for k, v in item.items() if k.lower() in USER_NAMES and isinstance(v, int)]
            names = names or [str(item[k]) for k in ids]  # {"user_id": 7, "score": 90}: players that are ids
            numbers = [v for k, v in item.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and k.lower() not in ("rank", "position", "place") and k not in ids]
            if len(names) != 1 or len(numbers) != 1:
                return None
            entries.append((names[0], float(numbers[0])))
        else:
            return None
    return entries


def _is_points(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def entries_text(entries: list[tuple[str, float]]) -> list[str]:
    """(user, score) pairs as a student reads them: "alice: 90", not "('alice', 90.0)"."""
    return [f"{name}: {int(points) if float(points).is_integer() else points}" for name, points in entries]


@check("leaderboard.score", title="POST /score stores the points in a Sorted Set", level="basic",
       requires=("app.uses_redis_url",),
       requirement="`POST /score` (a player and their points, as a JSON body or query parameters) answers 2xx and stores the points in a Sorted Set (`ZADD` or `ZINCRBY`); a later POST for the same player sets or adds to them")
@points_at("POST /score", "zadd", "zincrby", "hset")
async def score(ctx: CheckContext) -> CheckOutcome:
    fields = score_fields(ctx.openapi)
    client = ctx.probe.client()
    player = fields.player("alice")
    user = str(player)  # as Redis and the listing show it
    values = {fields.user: player, fields.score: 42}
    with ctx.trace.recording() as commands:
        reply = await client.post(SCORE, **fields.request(values))
    evidence = {"requests": [str(reply)], "redis": commands_text(commands) or ["(no command)"], "fields": fields.how}
    if not reply.ok:
        absent = missing_route(ctx.openapi, "post", SCORE) if reply.status in (404, 405) else None
        if absent:
            return failed(absent, **evidence)
        return failed(f"POST {SCORE} with {fields.shown(values)} answered {reply.status or reply.error}",
                      body=reply.text[:300], **evidence)
    # The member may carry a prefix of the app's ("user:<name>"): the player's name is unique, so it is found in it.
    zset_writes = [c for c in commands if c.name in ZSET_WRITES and any(user in arg for arg in c.args[1:])]
    if not zset_writes:
        return failed(f"POST {SCORE} sent no ZADD/ZINCRBY for '{user}': scores belong in a Sorted Set", **evidence)
    key = zset_writes[0].args[0]
    member = next(arg for arg in zset_writes[0].args[1:] if user in arg)
    stored = await ctx.redis.zscore(key, member)
    if stored is None or float(stored) != 42.0:
        return failed(f"after POST {SCORE} the Sorted Set '{key}' holds {stored} for '{user}', expected 42",
                      **evidence)
    # The player's points change with their next game: set (ZADD, ZADD GT) or added (ZINCRBY). ZADD NX (or XX)
    # would keep the first score for good.
    with ctx.trace.recording() as again_commands:
        again = await client.post(SCORE, **fields.request({fields.user: player, fields.score: 50}))
    later = await ctx.redis.zscore(key, member)
    evidence.update(requests=[str(reply), str(again)],
                    redis=commands_text([*commands, *again_commands]) or ["(no command)"])
    if not again.ok or later is None or float(later) not in (50.0, 92.0):
        seen = f"answered {again.status or again.error}" if not again.ok else f"left {later} in '{key}'"
        return failed(f"a second POST {SCORE} for the same player with 50 points {seen}: expected 50 (the new "
                      "score) or 92 (added to 42); ZADD NX keeps the first score for good", **evidence)
    return passed(f"POST {SCORE} stored 42 points for the user in Sorted Set '{key}', and {float(later):g} after a "
                  "second POST with 50", **evidence)


@check("leaderboard.top", title="GET /top returns the 3 highest scores, highest first", level="basic",
       requires=("app.uses_redis_url",),
       requirement="`GET /top` returns the top 3 players with their points, highest first")
@points_at("GET /top", "zrevrange", "zrange", "zrevrangebyscore", "zrangebyscore")
async def top(ctx: CheckContext) -> CheckOutcome:
    fields = score_fields(ctx.openapi)
    client = ctx.probe.client()
    players = {fields.player(tag): points for tag, points in
               (("ann", 10), ("bob", 50), ("cat", 30), ("dan", 70), ("eve", 20))}
    posts = [await client.post(SCORE, **fields.request({fields.user: name, fields.score: points}))
             for name, points in players.items()]
    if not all(p.ok for p in posts):
        absent = missing_route(ctx.openapi, "post", SCORE)
        return failed(absent or f"POST {SCORE} did not accept the test players", requests=requests_text(posts),
                      fields=fields.how)
    reply = await client.get(TOP)
    expected = sorted(((str(name), points) for name, points in players.items()), key=lambda item: -item[1])[:3]
    evidence = {"requests": requests_text(posts + [reply]), "body": reply.text[:400],
                "expected": entries_text(expected)}
    if not reply.ok:
        absent = missing_route(ctx.openapi, "get", TOP) if reply.status in (404, 405) else None
        return failed(absent or f"GET {TOP} answered {reply.status or reply.error}", **evidence)
    entries = top_entries(reply.body)
    if entries is None:
        return failed(f"GET {TOP} answered a shape with no (user, score) pairs", **evidence)
    got = [(name, points) for name, points in entries]
    if got == [(n, float(p)) for n, p in expected]:
        return passed(f"GET {TOP} returned the 3 highest of 5 players with their scores, highest first", **evidence)
    if sorted(got) == sorted((n, float(p)) for n, p in expected):
        return failed(f"GET {TOP} returned the right 3 players in the wrong order (expected highest first)",
                      **evidence)
    return failed(f"GET {TOP} returned {', '.join(entries_text(got))}, expected the 3 highest: "
                  f"{', '.join(entries_text(expected))}", **evidence)


# ---- Advanced ---------------------------------------------------------------------------------------------

REJECTED = (422, 400)  # FastAPI's validation error; 400 is a fair hand-written answer to bad input


@check("leaderboard.validation", title="Bad POST /score input gets 422, never 500", level="advanced",
       requires=("app.uses_redis_url",),
       requirement="`POST /score` without points, or with points that are not a number, answers 422 (never 500)")
@points_at("POST /score")
async def validation(ctx: CheckContext) -> CheckOutcome:
    fields = score_fields(ctx.openapi)
    client = ctx.probe.client()
    cases = {
        f"missing '{fields.score}'": {fields.user: fields.player("nos")},
        f"non-numeric '{fields.score}'": {fields.user: fields.player("nan"), fields.score: "not-a-number"},
    }
    replies = {case: await client.post(SCORE, **fields.request(body)) for case, body in cases.items()}
    evidence = {"requests": [f"{case}: {body} -> {replies[case].status or replies[case].error}"
                             for case, body in cases.items()],
                "fields": fields.how}
    wrong = [(case, reply) for case, reply in replies.items() if reply.status not in REJECTED]
    if not wrong:
        statuses = sorted({r.status for r in replies.values()})
        return passed(f"POST {SCORE} rejected a missing and a non-numeric score with "
                      f"{'/'.join(map(str, statuses))}", **evidence)
    case, reply = wrong[0]
    seen = reply.status if reply.error is None else reply.error
    why = (" (an unhandled error: declare the body as a pydantic model with a float score)" if reply.status == 500
           else " (it was accepted: the input is not validated)" if reply.ok else "")
    return failed(f"POST {SCORE} with a {case} answered {seen}, expected 422{why}",
                  body=reply.text[:300], **evidence)


def _static_pipelines(ctx: CheckContext, seed_files: list[str]) -> list[str]:
    """Pipelines where the bulk insert can be: files that add scores (ZADD/ZINCRBY), and the seed modules."""
    near = []
    for finding in ctx.facts.pipelines:
        try:
            text = (ctx.workspace.root / finding.file).read_text(errors="replace").lower()
        except OSError:
            continue
        if "zadd" in text or "zincrby" in text or finding.file in seed_files:
            near.append(f"{finding.file}:{finding.line}: {finding.text}")
    return near


def _module_file(app_dir: Path, module: str) -> Path | None:
    base = app_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py", base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _tail(output: str, lines: int = 15) -> list[str]:
    return output.strip().splitlines()[-lines:]


def _round_trips_picture(bulk: list[Command], alone: list[Command], module: str, names: str,
                         pipelined: bool) -> Figure | None:
    """The seed's writes grouped by the round trip they travelled in (None when it wrote nothing); `names` and
    `pipelined` as the verdict has them."""
    if not bulk:
        return None
    trips = len(round_trip_groups(bulk))
    waited = "each" if len(alone) == len(bulk) else f"{len(alone)} of them"
    caption = (f"python -m {module} sent {len(bulk)} {names} in {trips} round trip(s)"
               + (": several commands travelled together, as a pipeline sends them" if pipelined
                  else f": {waited} waited for the previous command's reply" if len(bulk) > 1 else "") + ".")
    return round_trips_figure(bulk, pipelined=pipelined, caption=caption)


@dataclass(frozen=True, kw_only=True)
class PipelineSettings(CheckSettings):
    """How the harness runs the submission's seeding when it has one (from the app's folder, REDIS_URL set)."""

    seed_modules: tuple[str, ...] = ()  # tried in order; the first that exists is run with `python -m`
    seed_timeout: float = 30.0


@check("leaderboard.pipeline", title="The test data is bulk-inserted with a pipeline", level="advanced",
       requires=("app.uses_redis_url",), timeout=90.0, settings=PipelineSettings,
       requirement="A seed module (one of {seed_modules}, run with `python -m` from the app's folder) bulk-inserts test players with one pipeline")
@points_at("zadd", "zincrby")
async def pipeline(ctx: CheckContext[PipelineSettings]) -> CheckOutcome:
    settings = ctx.settings
    found = {m: _module_file(ctx.app_dir, m) for m in settings.seed_modules}
    modules = [m for m, path in found.items() if path is not None]
    seed_files = [path.relative_to(ctx.workspace.root).as_posix() for path in found.values()
                  if path is not None and ctx.workspace.root in path.parents]
    static = _static_pipelines(ctx, seed_files)
    evidence: dict[str, Any] = {"pipelines_in_code": static or ["(none where scores are added or seeded)"]}
    if modules:
        module = modules[0]
        with ctx.trace.recording() as commands:
            run = await ctx.run([ctx.python, "-m", module], timeout=settings.seed_timeout)
        # The bulk insert is judged on every write the seeding sends (ZADD normally; another structure is
        # leaderboard.score's business, not this check's).
        bulk = [c for c in commands if c.name in WRITES]
        # A round trip of its own: neither sent while earlier commands awaited replies, nor queued in MULTI.
        alone = [c for c in bulk if not (c.pipelined or c.in_multi)]
        names = "/".join(sorted({c.name for c in bulk})) or "writes"
        pipelined = len(alone) * 2 <= len(bulk)  # most of the writes travelled with others
        figure = _round_trips_picture(bulk, alone, module, names, pipelined=len(bulk) > 1 and pipelined)
        evidence.update(seed=f"python -m {module}", exit_code=run.returncode, output_tail=_tail(run.output),
                        redis=[str(c) + ("  (pipelined)" if c.pipelined else "  (in MULTI)" if c.in_multi
                                         else "  (own round trip)") for c in bulk][:12]
                        or commands_text(commands, limit=12))
        if run.returncode == 0 and bulk:
            if len(bulk) == 1:
                return passed(f"python -m {module} wrote everything with a single {names} (one round trip)",
                              figure=figure, **evidence)
            if pipelined:
                # Counted as the picture counts them (by what arrived together), so the two never disagree.
                trips = len(round_trip_groups(bulk))
                return passed(f"python -m {module} sent {len(bulk)} {names} in {trips} round trip(s): "
                              "a pipeline", figure=figure, **evidence)
            return failed(f"python -m {module} sent {len(bulk)} {names}, {len(alone)} of them each in its own "
                          "round trip: batch them in one pipeline", figure=figure, **evidence)
        problem = (f"timed out after {settings.seed_timeout:g} s" if run.timed_out
                   else f"exited with code {run.returncode}" if run.returncode else "wrote nothing to Redis")
        # The seeding could not be observed: the code decides, and the evidence says why.
        evidence["seed_problem"] = problem
        if static:
            return passed(f"python -m {module} {problem}, but the code uses a pipeline where it adds scores "
                          f"({static[0]})", figure=figure, **evidence)
        return failed(f"python -m {module} {problem}, and no pipeline is used where scores are added",
                      figure=figure, **evidence)
    searched = ", ".join(settings.seed_modules) or "(none configured)"
    evidence["seed_modules_searched"] = searched
    if static:
        return passed(f"no seed module to run ({searched}); the code uses a pipeline where it adds scores "
                      f"({static[0]})", **evidence)
    return failed(f"no pipeline is used where scores are added, and no seed module was found ({searched}): "
                  "bulk-insert the test players with one pipeline", **evidence)
