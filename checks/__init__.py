"""The built-in checks, one module (or package) per area of the course. Each declares its checks with @check
from grader.api, the only part of the engine a check imports; grader.registry collects them."""
