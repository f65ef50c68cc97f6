"""One validation rule for settings, the daemon's keys and the executor; every problem reported at once."""

from __future__ import annotations

from daemon_util import knockout
from knockout.daemon.config import parse_config


def test_numbers_as_text_are_accepted_everywhere_alike(tmp_path):
    text = """
settle: "1.5"
retries: "3"
workers: "2"
executor: {dask: "tcp://h:1", max_in_flight: "8"}
settings: {feather: "2"}
jobs:
  - {inbox: in, outbox: out, recursive: "no", settings: {clusters: "4"}}
"""
    cfg = parse_config(text, base=tmp_path, name="c.yaml")
    (job,) = cfg.jobs
    assert (cfg.settle, cfg.retries, cfg.executor.workers, cfg.executor.max_in_flight) == (1.5, 3, 2, 8)
    assert (job.settings.feather, job.settings.clusters, job.recursive) == (2.0, 4, False)


def test_every_problem_is_reported_at_once_with_file_key_and_line(tmp_path):
    cfg = tmp_path / "studio.yaml"
    cfg.write_text(
        "settle: soon\n"  # line 1
        "observer: inotify\n"  # line 2
        "settings:\n"
        "  feather: wide\n"  # line 4
        "jobs:\n"
        "  - inbox: in\n"
        "    outbox: out\n"
        "    after: keep\n"  # line 8
        "    settings: {clusters: 99, methd: x}\n"  # line 9
    )
    r = knockout("watch", "-c", str(cfg), "--check", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    expected = [
        ("settle: 'soon' is not allowed", 1),
        ("observer: 'inotify' is not allowed", 2),
        ("feather: 'wide' is not a number", 4),
        ("jobs[0].after: 'keep' is not allowed", 8),
        ("clusters: 99 is out of range", 9),
        ("unknown setting 'methd'", 9),
    ]
    for needle, line in expected:
        (hit,) = [x for x in lines if needle in x]
        assert hit.startswith(f"knockout: error: {cfg}: ") and hit.endswith(f"(line {line})"), hit
    assert len(lines) == len(expected), r.stderr
    assert not (tmp_path / "in").exists()


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("settle: 1\njobs: [inbox: {\n")
    r = knockout("watch", "-c", str(cfg), "--check", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith(f"knockout: error: {cfg}: not valid YAML") and "line 3" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
