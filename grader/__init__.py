"""redis-grader: grades FastAPI submissions for the Redis module by their behaviour."""

__version__ = "0.1.0"
