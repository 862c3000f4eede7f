"""API tests against a real Redis at REDIS_URL (default redis://localhost:6379/0).

Run from backend/: `python -m pytest`.
"""

import uuid

import httpx
import pytest

from app.main import app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def client():
    # ASGITransport does not run the lifespan (which opens the Redis client), so run it here.
    # Every test gets its own client address, so the rate limiter never carries over between tests.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(f"test-{uuid.uuid4().hex[:8]}", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_health_reports_redis_up(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "up"}


async def test_products_are_listed_the_same_twice(client):
    first = await client.get("/products")
    second = await client.get("/products")
    assert first.status_code == second.status_code == 200
    assert first.json() and first.json() == second.json()


async def test_create_and_update_product(client):
    created = await client.post("/products", json={"name": "Vite Deep Dive", "price": 39})
    assert created.status_code == 201
    product_id = created.json()["id"]
    updated = await client.put(f"/products/{product_id}", json={"name": "Vite Deep Dive", "price": 35})
    assert updated.status_code == 200
    assert updated.json()["price"] == 35
    missing = await client.put("/products/999999", json={"name": "x", "price": 1})
    assert missing.status_code == 404


async def test_score_then_top(client):
    for n in range(4):
        response = await client.post("/score", json={"user": f"tester-{n}", "score": 1_000_000 + n})
        assert response.status_code == 200
    top = (await client.get("/top")).json()
    assert len(top) == 3
    assert all(set(row) == {"user", "score"} for row in top)


async def test_first_ten_requests_are_served(client):
    for _ in range(10):
        response = await client.get("/products")
        assert response.status_code == 200
