"""The cache of GET /products: cache-aside with a 60-second TTL (basic), invalidation on writes and protection
against a stampede at expiry (advanced). The names below are the ones tests and other checks use."""

from checks.cache.common import PRODUCTS, Populated, populate, product_list
from checks.cache.invalidation import WriteEndpoint, sample_body, write_endpoints
from checks.cache.stampede import FAIL, PASS, UNSURE, Expiry, _shorten_metadata

__all__ = [
    "FAIL",
    "PASS",
    "PRODUCTS",
    "UNSURE",
    "Expiry",
    "Populated",
    "WriteEndpoint",
    "_shorten_metadata",
    "populate",
    "product_list",
    "sample_body",
    "write_endpoints",
]
