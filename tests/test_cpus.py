"""knockout._cpus: the CPUs a process may use and the thread cap of pool workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from knockout._cpus import limit_threads, own_threads_limited, usable_cpus


def _in_fresh_process(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_usable_cpus_is_the_affinity_mask():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cpus() == expected


def test_limit_threads_caps_knockouts_pools_and_blas():
    got = _in_fresh_process(
        "import json, os, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from knockout._cpus import limit_threads, usable_cpus\n"
        "limit_threads(1)\n"
        "blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(json.dumps({'cpus': usable_cpus(), 'omp': os.environ['OMP_NUM_THREADS'], 'blas': blas}))"
    )
    assert got["cpus"] == 1 and got["omp"] == "1"
    assert got["blas"] and set(got["blas"]) == {1}


def test_a_cap_above_the_cpus_changes_nothing():
    got = _in_fresh_process(
        "import json\nfrom knockout._cpus import limit_threads, usable_cpus\n"
        "n = usable_cpus()\nlimit_threads(n + 3)\nprint(json.dumps({'before': n, 'after': usable_cpus()}))"
    )
    assert got["after"] == got["before"]


def test_cut_workers_are_capped_and_warm():
    got = _in_fresh_process(
        "import json, sys\n"
        "from knockout.commands.cut import _start_worker\n"
        "from knockout.settings import Settings\n"
        "from knockout._cpus import usable_cpus\n"
        "_start_worker(1, Settings())\n"
        "print(json.dumps({'cpus': usable_cpus(), 'warm': 'knockout.matte' in sys.modules}))"
    )
    assert got == {"cpus": 1, "warm": True}


def test_zero_threads_is_refused():
    with pytest.raises(ValueError, match="threads must be >= 1"):
        limit_threads(0)


def test_own_threads_limited_caps_only_within_the_block():
    cpus = usable_cpus()
    with own_threads_limited(1):
        assert usable_cpus() == 1
        with own_threads_limited(4):  # never above an outer cap
            assert usable_cpus() == 1
        assert usable_cpus() == 1
    assert usable_cpus() == cpus
    with pytest.raises(ValueError, match="threads must be >= 1"):
        with own_threads_limited(0):
            pass
