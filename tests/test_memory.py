import ctypes
import json
import os
import subprocess
import sys

import pytest

from knockout import _memory

# Five 4 MB arrays made, filled and freed together, 20 times, as a cut-out's temporaries come and go;
# the minor page faults counted (pages mapped afresh), not a time.
_CHURN = r"""
import json, resource, sys
import numpy as np
from knockout._memory import reuse_freed_memory
tuned = reuse_freed_memory() if sys.argv[1] == "on" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for rep in range(20):
    arrays = [np.ones(1 << 20, np.float32) for _ in range(5)]
    del arrays
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout)


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(ctypes.CDLL(None).gnu_get_libc_version)
    except (OSError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc only")
def test_freed_memory_is_reused_instead_of_mapped_again():
    off, on = _faults("off"), _faults("on")
    assert on["tuned"] is True
    # 400 MB allocated in all: mapped afresh each time without it (~40,000 faults), reused with it
    assert on["faults"] * 5 < off["faults"], (on, off)


def test_users_malloc_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert _memory.reuse_freed_memory() is False


# Freed on a thread, then made again on the main thread (a JPEG decoded on a thread while the core
# is imported, then the cut-out's arrays): with one arena the main thread reuses what the thread freed.
_THREAD_CHURN = r"""
import json, resource, sys, threading
import numpy as np
from knockout._memory import reuse_freed_memory
tuned = reuse_freed_memory() if sys.argv[1] == "on" else False
def churn():
    arrays = [np.ones(1 << 20, np.float32) for _ in range(10)]
    del arrays
t = threading.Thread(target=churn)
t.start()
t.join()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
arrays = [np.ones(1 << 20, np.float32) for _ in range(10)]
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc only")
def test_memory_freed_on_a_thread_is_reused_by_the_main_thread():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    on = json.loads(
        subprocess.run(
            [sys.executable, "-c", _THREAD_CHURN, "on"], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    assert on["tuned"] is True
    # 40 MB made afresh would be ~10,000 page faults; reused, a few hundred at most
    assert on["faults"] < 1000, on
