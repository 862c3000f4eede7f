"""A stand-in for the shop's database: an in-memory product table.

Every query sleeps a little, like a real round trip to PostgreSQL would, and is counted,
so the effect of the Redis cache is easy to see (fewer calls, faster responses).
"""

import asyncio

QUERY_DELAY_S = 0.08

_products: list[dict] = [
    {"id": 1, "name": "Vue 3 Basics", "price": 19.0},
    {"id": 2, "name": "Pinia in Practice", "price": 29.0},
    {"id": 3, "name": "Nuxt for Production", "price": 49.0},
]

fetch_calls = 0  # how many times the product list was read from the "database"


async def fetch_products() -> list[dict]:
    global fetch_calls
    fetch_calls += 1
    await asyncio.sleep(QUERY_DELAY_S)
    return [dict(product) for product in _products]


async def create_product(name: str, price: float) -> dict:
    await asyncio.sleep(QUERY_DELAY_S)
    product = {"id": max((p["id"] for p in _products), default=0) + 1, "name": name, "price": price}
    _products.append(product)
    return dict(product)


async def update_product(product_id: int, name: str, price: float) -> dict | None:
    await asyncio.sleep(QUERY_DELAY_S)
    for product in _products:
        if product["id"] == product_id:
            product.update(name=name, price=price)
            return dict(product)
    return None
