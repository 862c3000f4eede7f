"""Benchmark: push a lot of data through a RedisProxy to a real Redis and report how much the proxy's process
grows. The trace keeps previews of arguments, never the values themselves, so the growth stays small however
much passes.

    python bench/memory.py [--megabytes 200] [--value-kb 256]

Memory is reported here and bounded by tests/test_proxy.py; no speed is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from grader.proxy import RedisProxy
from grader.services import start_redis

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class MemoryReport:
    sent_mb: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    traced: int

    @property
    def growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / (1 << 20)


class _PeakSampler:
    """The highest RSS seen while it runs (sampled every 10 ms)."""

    def __init__(self) -> None:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def measure(megabytes: int = 200, value_kb: int = 256, redis_kind: str = "local") -> MemoryReport:
    """SET `megabytes` of values of `value_kb` each through a proxy, each to its own key, deleting as it goes
    so Redis itself stays small (it may run in this machine's memory, not this process's)."""
    value = os.urandom(value_kb * 1024 // 2).hex().encode()
    count = megabytes * 1024 // value_kb
    with start_redis(redis_kind) as server, RedisProxy(server.host, server.port) as proxy:
        client = redis.Redis.from_url(proxy.url, socket_timeout=30)
        try:
            client.ping()
            before = _rss_mb()
            with _PeakSampler() as sampler:
                for index in range(count):
                    pipe = client.pipeline(transaction=False)
                    pipe.set(f"blob:{index}", value)
                    pipe.unlink(f"blob:{index}")
                    pipe.execute()
            return MemoryReport(
                sent_mb=count * len(value) / (1 << 20),
                rss_before_mb=before,
                rss_peak_mb=sampler.peak,
                rss_after_mb=_rss_mb(),
                traced=len(proxy.trace),
            )
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--value-kb", type=int, default=256)
    parser.add_argument("--redis", default="local", choices=("local", "docker", "auto"))
    args = parser.parse_args()
    report = measure(args.megabytes, args.value_kb, args.redis)
    print(f"sent {report.sent_mb:.0f} MB in {report.traced} traced commands")
    print(f"RSS before {report.rss_before_mb:.1f} MB, peak {report.rss_peak_mb:.1f} MB, after "
          f"{report.rss_after_mb:.1f} MB: grew {report.growth_mb:.1f} MB")


if __name__ == "__main__":
    main()
