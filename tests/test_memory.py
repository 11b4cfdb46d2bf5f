"""cityops/memory.py: freed memory goes back to the system, at most once a minute while serving."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cityops.memory import LIBC, ReleaseEvery

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(LIBC is None, reason="malloc_trim and mallopt are glibc's (Debian has them)")


def test_released_memory_leaves_the_process():
    """~200 MB of 2 kB objects freed but for every 50th (so the heap's top stays in use and glibc would keep the
    rest): after release_free_memory the process is at least 100 MB smaller. In a child process, so what the test
    run allocated elsewhere does not count."""
    script = textwrap.dedent("""
        import psutil
        from cityops.memory import limit_arenas, release_free_memory
        assert limit_arenas()
        process = psutil.Process()
        blocks = [bytearray(2048) for _ in range(100_000)]
        kept = blocks[::50]
        del blocks
        before = process.memory_info().rss
        assert release_free_memory()
        after = process.memory_info().rss
        print(before >> 20, after >> 20, len(kept))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before_mb, after_mb, _ = map(int, done.stdout.split())
    assert before_mb - after_mb >= 100, (before_mb, after_mb)


def test_release_runs_at_most_once_per_period():
    now = [1000.0]
    releaser = ReleaseEvery(60.0, clock=lambda: now[0])
    assert releaser.maybe() is False and releaser.count == 0  # not in the first minute
    now[0] += 61
    assert releaser.maybe() is True and releaser.count == 1
    assert releaser.maybe() is False and releaser.count == 1
    now[0] += 30
    assert releaser.maybe() is False
    now[0] += 31
    assert releaser.maybe() is True and releaser.count == 2

