"""Fails at import: the package is not installed anywhere (a 'missing dependency')."""

import redis_grader_not_installed_pkg  # noqa: F401
from fastapi import FastAPI

app = FastAPI()
