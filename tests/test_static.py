"""Static facts read by AST: each on small code samples, with the aliases and shapes real solutions use."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.static import Finding, StaticFacts, analyze


def facts_of(tmp_path: Path, files: dict[str, str]) -> StaticFacts:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return analyze(tmp_path)


def lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.file, f.line) for f in findings]


# --- async clients and their aliases ------------------------------------------------------------

ASYNC_SHAPES = {
    "seed": "import redis.asyncio as redis\nr = redis.from_url('redis://localhost:6379', decode_responses=True)\n",
    "alias": "import redis.asyncio as aioredis\nr = aioredis.Redis(host='h', decode_responses=True)\n",
    "from-module": "from redis import asyncio as redis\nr = redis.from_url(URL, decode_responses=True)\n",
    "from-function": "from redis.asyncio import from_url\nr = from_url(URL, decode_responses=True)\n",
    "class-from-url": "from redis.asyncio import Redis\nr = Redis.from_url(URL, decode_responses=True)\n",
    "class-renamed": "from redis.asyncio import Redis as AsyncRedis\nr = AsyncRedis(decode_responses=True)\n",
    "plain-import": "import redis\nr = redis.asyncio.from_url(URL, decode_responses=True)\n",
    "submodule-import": "import redis.asyncio\nr = redis.asyncio.Redis(decode_responses=True)\n",
    "client-module": "from redis.asyncio.client import Redis\nr = Redis(decode_responses=True)\n",
    "star": "from redis.asyncio import *\nr = from_url(URL, decode_responses=True)\n",
    "module-alias": "import redis.asyncio\nMake = redis.asyncio.from_url\nr = Make(URL, decode_responses=True)\n",
    "aioredis-2": "import aioredis\nr = aioredis.from_url(URL, decode_responses=True)\n",
    "in-function": """
        import redis.asyncio as redis
        async def get_redis():
            return redis.Redis.from_url(settings.redis_url, decode_responses=True)
    """,
}


@pytest.mark.parametrize("shape", sorted(ASYNC_SHAPES))
def test_async_client_shapes(tmp_path: Path, shape: str) -> None:
    facts = facts_of(tmp_path, {"app/redis_client.py": ASYNC_SHAPES[shape]})
    assert len(facts.async_clients) == 1, facts.async_clients
    assert facts.decode_responses == facts.async_clients
    assert facts.sync_clients == [] and facts.missing_decode_responses == []
    assert facts.async_clients[0].file == "app/redis_client.py"


def test_finding_carries_the_stripped_source_line(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, {"m.py": "import redis.asyncio as r\n\n\ndef f():\n    c = r.from_url(\n        U)\n"})
    assert facts.async_clients == [Finding("m.py", 5, "c = r.from_url(")]


@pytest.mark.parametrize(
    "code",
    [
        "import redis.asyncio as redis\nr = redis.from_url(URL)\n",
        "import redis.asyncio as redis\nr = redis.Redis(host='h', decode_responses=False)\n",
        "import redis.asyncio as redis\nDECODE = False\nr = redis.Redis(decode_responses=DECODE)\n",
        "import redis.asyncio as redis\nr = redis.from_url(URL, **{'max_connections': 5})\n",
        "import redis.asyncio as redis\nopts = dict(db=0)\nr = redis.from_url(URL, **opts)\n",
    ],
)
def test_missing_decode_responses(tmp_path: Path, code: str) -> None:
    facts = facts_of(tmp_path, {"m.py": code})
    assert len(facts.async_clients) == 1
    assert facts.missing_decode_responses == facts.async_clients and facts.decode_responses == []


@pytest.mark.parametrize(
    "code",
    [
        # visible through **kwargs
        "import redis.asyncio as redis\nr = redis.from_url(URL, **{'decode_responses': True})\n",
        "import redis.asyncio as redis\nopts = dict(decode_responses=True)\nr = redis.from_url(URL, **opts)\n",
        """
        import redis.asyncio as redis
        def make():
            kw = {"encoding": "utf-8", "decode_responses": True}
            return redis.Redis(host="h", **kw)
        """,
        "import redis.asyncio as redis\nON = True\nr = redis.Redis(decode_responses=ON)\n",
        "import redis.asyncio as redis\nr = redis.from_url('redis://h:6379/0?decode_responses=True')\n",
        # not visible: the benefit of the doubt
        "import redis.asyncio as redis\nr = redis.Redis(decode_responses=settings.decode)\n",
        "import redis.asyncio as redis\ndef make(**kwargs):\n    return redis.from_url(URL, **kwargs)\n",
        "import redis.asyncio as redis\nkw = {}\nkw['decode_responses'] = True\nr = redis.from_url(URL, **kw)\n",
        "import redis.asyncio as redis\ndef make(pool):\n    return redis.Redis(connection_pool=pool)\n",
        "import redis.asyncio as redis\nr = redis.Redis(connection_pool=get_pool())\n",
        "import redis.asyncio as redis\ns = redis.Sentinel([('h', 26379)])\n",
    ],
)
def test_decode_responses_seen_or_given_the_benefit_of_the_doubt(tmp_path: Path, code: str) -> None:
    facts = facts_of(tmp_path, {"m.py": code})
    assert len(facts.async_clients) == 1
    assert facts.missing_decode_responses == [] and len(facts.decode_responses) == 1


@pytest.mark.parametrize(("files", "found"), [
    pytest.param({
        "app/redis.py": """
        from redis.asyncio import ConnectionPool, Redis
        pool = ConnectionPool.from_url(URL, decode_responses=True)
        client = Redis(connection_pool=pool)
        inline = Redis(connection_pool=ConnectionPool(host="h", decode_responses=True))
        other = Redis.from_pool(pool)
    """,
    }, {
        "async_clients": [("app/redis.py", 4), ("app/redis.py", 5), ("app/redis.py", 6)],
        "missing_decode_responses": [],
        # The pool line is where the setting lives.
        "decode_responses": [("app/redis.py", 3), ("app/redis.py", 5)],
    }, id="decode-responses-through-a-pool"),
    pytest.param({
        "app/deps.py": """
        import redis.asyncio as aioredis
        class Store:
            def __init__(self):
                self.pool = aioredis.ConnectionPool.from_url(URL, decode_responses=False)
            def client(self):
                return aioredis.Redis(connection_pool=self.pool, decode_responses=True)
    """,
    }, {
        # redis-py takes the pool's connection settings: the client's own keyword does not matter.
        "missing_decode_responses": [("app/deps.py", 5)],
        "async_clients": [("app/deps.py", 7)],
    }, id="pool-without-decode-responses-is-reported-at-the-pool"),
    pytest.param({
        "app/pool.py": "from redis.asyncio import BlockingConnectionPool\nredis_pool = BlockingConnectionPool(decode_responses=True)\n",
        "app/main.py": "from redis.asyncio import Redis\nfrom app.pool import redis_pool\nr = Redis(connection_pool=redis_pool)\n",
        "app/other.py": "from redis.asyncio import Redis\nfrom .pool import redis_pool as p\nr = Redis(connection_pool=p)\n",
    }, {
        "async_clients": [("app/main.py", 3), ("app/other.py", 3)],
        "decode_responses": [("app/pool.py", 2)],
        "missing_decode_responses": [],
    }, id="pool-imported-from-another-module"),
    pytest.param({
        "a.py": "import aioredis\nasync def f():\n    return await aioredis.create_redis_pool(URL, encoding='utf-8')\n",
        "b.py": "import aioredis\nasync def f():\n    return await aioredis.create_redis_pool(URL)\n",
    }, {"decode_responses": [("a.py", 3)], "missing_decode_responses": [("b.py", 3)]},
        id="aioredis-1-decodes-with-an-encoding"),
    pytest.param({
        "app/main.py": "import redis\nr = redis.Redis(host='localhost', port=6379, decode_responses=True)\n",
        "scripts/seed.py": "from redis import StrictRedis\nr = StrictRedis.from_url(URL)\nr.pipeline()\n",
        "app/cache.py": "from redis import from_url as connect\nr = connect(URL)\n",
    }, {
        "sync_clients": [("app/cache.py", 2), ("app/main.py", 2), ("scripts/seed.py", 2)],
        "async_clients": [], "decode_responses": [], "missing_decode_responses": [],
    }, id="sync-clients-in-app-and-script-are-both-reported"),
    pytest.param({
        "app/cache.py": """
            import redis.asyncio as redis
            class Cache(redis.Redis):
                def __init__(self, url: str):
                    super().__init__(connection_pool=redis.ConnectionPool.from_url(url, decode_responses=True))
            class Special(Cache):
                pass
        """,
        "app/main.py": """
            from app.cache import Cache, Special
            a = Cache(URL)
            b = Special.from_url(URL)
            c = Cache(URL, decode_responses=False)
        """,
        "scripts/sync.py": "import redis\nclass Blocking(redis.StrictRedis):\n    pass\nr = Blocking()\n",
    }, {
        "async_clients": [("app/main.py", 3), ("app/main.py", 4), ("app/main.py", 5)],
        # Its own __init__ may set decode_responses: only an explicit keyword is judged.
        "missing_decode_responses": [("app/main.py", 5)],
        "sync_clients": [("scripts/sync.py", 4)],
    }, id="clients-built-through-a-local-subclass"),
    pytest.param({
        "app/lifespan.py": "from app.pools import make_pool\nasync def lifespan(app):\n    app.state.pool = make_pool()\n",
        "app/deps.py": "from redis.asyncio import Redis\ndef get(request):\n    return Redis(connection_pool=request.app.state.pool)\n",
        "tools/bench.py": "import redis.asyncio as r\npool = r.ConnectionPool(host='h')\n",
        "app/cache.py": """
            import redis.asyncio as r
            from fastapi import FastAPI
            app = FastAPI()
            app.state.cache_pool = r.ConnectionPool(host='h')
            def get(request):
                return r.Redis(connection_pool=request.app.state.cache_pool)
        """,
    }, {
        # `pool` is also assigned make_pool(): cannot tell. `cache_pool` is only ever the undecoded pool.
        "decode_responses": [("app/deps.py", 3)],
        "missing_decode_responses": [("app/cache.py", 5)],
    }, id="pool-matched-by-name-across-modules-only-when-unambiguous"),
])  # fmt: skip
def test_where_each_fact_is_found(tmp_path: Path, files: dict[str, str],
                                  found: dict[str, list[tuple[str, int]]]) -> None:
    """Clients, pools and subclasses across modules: for each fact named, every place it was found (none: [])."""
    facts = facts_of(tmp_path, files)
    assert {name: lines(getattr(facts, name)) for name in found} == found


# --- sync clients -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        # only annotations / references, never built
        "import redis\nfrom redis import Redis\ndef f(r: Redis) -> redis.Redis:\n    return r\n",
        # a name bound to both modules: counted async, never sync
        "try:\n    from redis.asyncio import Redis\nexcept ImportError:\n    from redis import Redis\nr = Redis()\n",
        # an unrelated Redis class
        "from mylib import Redis\nr = Redis()\n",
        "class Redis: ...\nr = Redis()\n",
    ],
)
def test_not_a_sync_client(tmp_path: Path, code: str) -> None:
    assert facts_of(tmp_path, {"m.py": code}).sync_clients == []


# --- pipelines, Lua, Functions ------------------------------------------------------------------


def test_pipelines(tmp_path: Path) -> None:
    facts = facts_of(
        tmp_path,
        {
            "m.py": """
            import redis.asyncio as redis
            from transformers import pipeline
            import sklearn.pipeline
            r = redis.from_url(URL, decode_responses=True)
            async def seed(client):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.zadd("lb", {"a": 1})
                p = r.pipeline()
                await p.execute()
            nlp = pipeline("sentiment")
            x = sklearn.pipeline.Pipeline([])
            y = sklearn.pipeline.make_pipeline()
        """,
        },
    )
    assert lines(facts.pipelines) == [("m.py", 7), ("m.py", 9)]


def test_lua_and_functions(tmp_path: Path) -> None:
    facts = facts_of(
        tmp_path,
        {
            "m.py": '''
            """Module docstring mentioning redis.call( is not code."""
            LIMIT = """
            local n = redis.call('INCR', KEYS[1])
            """
            async def f(r, df):
                script = r.register_script(LIMIT)
                await r.eval(LIMIT, 1, "k")
                await r.evalsha(SHA, 1, "k")
                await r.execute_command("EVALSHA", SHA, 1, "k")
                df.eval("a + b")
                model.eval()
                await r.function_load(LIB, replace=True)
                await r.fcall("limit", 1, "k")
                await r.execute_command("FUNCTION LOAD", LIB)
            LIB = "#!lua name=limiter\\nredis.register_function('limit', function(k) return 1 end)"
            async def g(r):
                await r.eval(script=LIMIT, numkeys=1)
                df.eval("a + b", inplace=True)
        ''',
        },
    )
    assert [n for _, n in lines(facts.lua)] == [3, 7, 8, 9, 10, 14, 16, 18]
    assert [n for _, n in lines(facts.functions_api)] == [13, 14, 15, 16]


# --- Redis addresses and REDIS_URL --------------------------------------------------------------


def test_redis_urls(tmp_path: Path) -> None:
    code = """
        \"\"\"Connects to redis://localhost:6379 (a docstring: not listed).\"\"\"
        import os
        import redis.asyncio as redis
        from pydantic_settings import BaseSettings
        from starlette.config import Config
        URL = os.getenv("REDIS_URL", "redis://localhost:6379/0")  # fallbacks the environment overrides
        CFG = Config()("REDIS_URL", default="redis://localhost")
        class Settings(BaseSettings):
            redis_url: str = "redis://localhost:6379"
        built = f"redis://{os.environ['REDIS_HOST']}:6379"
        HARD = "redis://redis:6379/0"
        a = redis.Redis(host="localhost", port=6379, decode_responses=True)
        b = redis.Redis("redis", decode_responses=True)
        c = redis.Redis(host=os.environ["REDIS_HOST"], decode_responses=True)
        d = redis.from_url(URL, decode_responses=True)
        e = redis.from_url("rediss://cache.example:6380", decode_responses=True)
        other = "https://example.com"
    """
    facts = facts_of(tmp_path, {"m.py": code})
    assert [n for _, n in lines(facts.redis_urls)] == [12, 13, 14, 17]


@pytest.mark.parametrize(
    ("code", "reads"),
    [
        ("import os\nURL = os.getenv('REDIS_URL')\n", True),
        ("import os\nURL = os.environ['REDIS_URL']\n", True),
        ("from os import environ\nURL = environ.get('REDIS_URL', 'redis://localhost')\n", True),
        ("from starlette.config import Config\nconfig = Config()\nURL = config('REDIS_URL')\n", True),
        (
            "from pydantic_settings import BaseSettings\nclass S(BaseSettings):\n    redis_url: str = 'redis://x'\n",
            True,
        ),
        (
            "from pydantic import BaseSettings\nclass Base(BaseSettings):\n    pass\nclass S(Base):\n    REDIS_URL: str\n",
            True,
        ),
        (
            (
                "from pydantic_settings import BaseSettings, SettingsConfigDict\nclass S(BaseSettings):\n"
                "    model_config = SettingsConfigDict(env_prefix='APP_')\n    redis_url: str = 'redis://x'\n"
            ),
            False,
        ),
        (
            (
                "from pydantic_settings import BaseSettings\nfrom pydantic import Field\nclass S(BaseSettings):\n"
                "    model_config = {'env_prefix': 'APP_'}\n    url: str = Field('x', validation_alias='REDIS_URL')\n"
            ),
            True,
        ),
        ("from pydantic import BaseModel\nclass S(BaseModel):\n    redis_url: str = 'redis://x'\n", False),
        ("import os\nURL = os.getenv('REDIS_HOST')\nprint('REDIS_URL')\n", False),
    ],
)
def test_reads_redis_url_env(tmp_path: Path, code: str, reads: bool) -> None:
    assert facts_of(tmp_path, {"m.py": code}).reads_redis_url_env is reads


# --- files, libraries, robustness ---------------------------------------------------------------


def test_libraries_are_top_level_non_stdlib_imports(tmp_path: Path) -> None:
    facts = facts_of(
        tmp_path,
        {
            "m.py": "import os, json\nimport redis.asyncio\nfrom fastapi import FastAPI\nfrom fastapi_limiter.depends import RateLimiter\n"
            "from . import sibling\nfrom __future__ import annotations\n",
        },
    )
    assert facts.libraries == {"redis", "fastapi", "fastapi_limiter"}


def test_syntax_errors_do_not_stop_the_analysis(tmp_path: Path) -> None:
    facts = facts_of(
        tmp_path,
        {
            "broken.py": "import redis\n\ndef f(:\n    pass\n",
            "ok.py": "import redis.asyncio as redis\nr = redis.from_url(URL, decode_responses=True)\n",
        },
    )
    (tmp_path / "nul.py").write_bytes(b"x = 1\0\n")
    (tmp_path / "latin.py").write_bytes(b"s = '\xe9'\n")
    assert facts.files == 2  # counted before the two binary files were added
    facts = analyze(tmp_path)
    assert facts.files == 4
    assert [f.file for f in facts.syntax_errors] == ["broken.py", "latin.py", "nul.py"]
    broken = facts.syntax_errors[0]
    assert broken.line == 3 and broken.text.endswith("def f(:")
    assert lines(facts.async_clients) == [("ok.py", 2)]


def test_skips_virtualenvs_node_modules_and_hidden_folders(tmp_path: Path) -> None:
    sync = "import redis\nr = redis.Redis()\n"
    facts = facts_of(
        tmp_path,
        {
            ".venv/lib/python3.11/site-packages/x.py": sync,
            "venv/x.py": sync,
            "node_modules/x.py": sync,
            "lib/site-packages/x.py": sync,
            "myenv/pyvenv.cfg": "",
            "myenv/x.py": sync,
            ".ipynb_checkpoints/main-checkpoint.py": sync,
            "app/main.py": "x = 1\n",
        },
    )
    assert facts.files == 1 and facts.sync_clients == []


def test_to_dict_is_json_ready(tmp_path: Path) -> None:
    import json

    facts = facts_of(tmp_path, {"m.py": ASYNC_SHAPES["seed"]})
    data = json.loads(json.dumps(facts.to_dict()))
    assert data["async_clients"][0]["line"] == 2 and data["libraries"] == ["redis"]


def test_the_files_the_app_imports_directly_through_others_and_relatively(tmp_path: Path) -> None:
    from grader.static.imports import app_imports

    files = {
        "backend/app/__init__.py": "",
        "backend/app/main.py": "from fastapi import FastAPI\nfrom app.routes import scores\nfrom . import deps\n",
        "backend/app/routes/__init__.py": "",
        "backend/app/routes/scores.py": "from ..store import save\n\ndef later():\n    import app.late\n",
        "backend/app/store.py": "import redis.asyncio\n",
        "backend/app/deps.py": "",
        "backend/app/late.py": "",
        "backend/app/seed.py": "import redis\n",  # run on its own: never imported by the app
        "backend/populate_leaderboard.py": "import redis\n",
        "backend/tests/test_api.py": "from app.main import app\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert app_imports(tmp_path, tmp_path / "backend", "app.main") == {
        "backend/app/__init__.py", "backend/app/main.py", "backend/app/routes/__init__.py",
        "backend/app/routes/scores.py", "backend/app/store.py", "backend/app/deps.py", "backend/app/late.py"}
    assert app_imports(tmp_path, tmp_path / "backend", "app.nowhere") is None  # nothing can be said
    # Read as the static analysis reads: a link, or a file over MAX_PY_BYTES, is not followed.
    (tmp_path / "backend/app/deps.py").unlink()
    (tmp_path / "backend/app/deps.py").symlink_to(tmp_path / "backend/app/late.py")
    assert "backend/app/deps.py" not in app_imports(tmp_path, tmp_path / "backend", "app.main")
