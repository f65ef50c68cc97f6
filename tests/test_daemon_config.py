"""`knockout watch --check` and the config file: errors name the file, the key and what is allowed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from daemon_util import knockout, write_config
from knockout.daemon.config import load_config, parse_config

from knockout.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_packaged_default_is_the_repository_config():
    from importlib import resources

    packaged = resources.files("knockout.daemon").joinpath("default-config.yaml").read_text(encoding="utf-8")
    assert packaged == (ROOT / "config.yaml").read_text(encoding="utf-8")


def test_default_config_watches_inbox_and_outbox_beside_it(tmp_path, monkeypatch):
    cfg = parse_config((ROOT / "config.yaml").read_text(), base=tmp_path, name="config.yaml")
    (job,) = cfg.jobs
    assert (job.inbox, job.outbox) == (tmp_path / "inbox", tmp_path / "outbox")
    assert (job.processed, job.failed) == (tmp_path / "processed", tmp_path / "failed")
    # with no -c and no ./config.yaml, the packaged copy is used relative to the current folder
    monkeypatch.chdir(tmp_path)
    assert load_config().jobs[0].inbox == tmp_path / "inbox"
    (tmp_path / "config.yaml").write_text("jobs: [{inbox: in2, outbox: out2}]\n")
    assert load_config().jobs[0].inbox == tmp_path / "in2"


def test_check_prints_the_resolved_config(tmp_path):
    sub = tmp_path / "studio"
    sub.mkdir()
    cfg = write_config(
        sub,
        "studio.yaml",
        jobs=[
            {"name": "grey", "inbox": "inbox/grey", "outbox": "out/grey", "settings": {"method": "threshold"}},
            {"name": "white", "inbox": "inbox/white", "outbox": "out/white", "settings": {"clusters": 4}},
        ],
        settings={"feather": 0},
    )
    r = knockout("watch", "-c", str(cfg), "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = yaml.safe_load(r.stdout)
    grey, white = out["jobs"]
    assert grey["inbox"] == str(sub / "inbox" / "grey") and white["outbox"] == str(sub / "out" / "white")
    assert grey["settings"]["method"] == "threshold" and white["settings"]["clusters"] == 4
    assert grey["settings"]["feather"] == 0 and white["settings"]["feather"] == 0
    assert not (sub / "inbox").exists(), "--check must not create folders"


def test_a_reader_that_goes_away_is_not_a_traceback(tmp_path):
    # `knockout watch --check | head -1`: the pipe's reader is gone before knockout writes
    cfg = write_config(tmp_path, "k.yaml", jobs=[{"name": "a", "inbox": "in", "outbox": "out"}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "knockout.cli", "watch", "-c", str(cfg), "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


BAD = [
    ({"settle": "soon"}, "settle: 'soon' is not allowed"),
    ({"observer": "inotify"}, "observer: 'inotify' is not allowed; use one of: auto, native, polling"),
    ({"workers": -1}, "workers: -1"),
    ({"executor": {"dask": "tcp://x:1", "max_in_flight": "lots"}}, "executor.max_in_flight"),
    ({"setle": 1}, "unknown key 'setle' (did you mean 'settle'?)"),
    ({"settings": {"feathr": 2}}, "unknown setting 'feathr' (did you mean 'feather'?)"),
    ({"settings": {"method": "magic"}}, "method: 'magic' is not allowed"),
    ({"jobs": []}, "jobs: a list of one or more jobs is required"),
    ({"jobs": [{"inbox": "in"}]}, "jobs[0].outbox: missing"),
    ({"jobs": [{"inbox": "in", "outbox": "out", "colision": "skip"}]}, "jobs[0]: unknown key 'colision'"),
    ({"jobs": [{"inbox": "in", "outbox": "out", "after": "keep"}]}, "jobs[0].after: 'keep' is not allowed"),
    ({"jobs": [{"inbox": "in", "outbox": "in/out"}]}, "jobs[0].outbox"),
    ({"jobs": [{"inbox": "in", "outbox": "out", "processed": "in/done"}]}, "jobs[0].processed"),
    ({"jobs": [{"inbox": "in/x", "outbox": "in"}]}, "overlaps the job's inbox"),
    (
        {"jobs": [{"name": "a", "inbox": "in", "outbox": "o1"}, {"name": "b", "inbox": "in", "outbox": "o2"}]},
        "jobs[1].inbox",
    ),
    (
        {"jobs": [{"name": "a", "inbox": "in", "outbox": "o1"}, {"name": "b", "inbox": "in2", "outbox": "in/o"}]},
        "jobs[1].outbox",
    ),
    (
        {"jobs": [{"inbox": "in", "outbox": "o", "settings": {"output": "rgba", "format": "jpeg"}}]},
        "jpeg cannot hold an alpha channel",
    ),
]


@pytest.mark.parametrize(("change", "needle"), BAD)
def test_bad_configs_exit_2_naming_file_and_key(tmp_path, capsys, change, needle):
    cfg = write_config(tmp_path, "bad.yaml", **change)
    assert main(["watch", "-c", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and needle in err, err
    assert not (tmp_path / "in").exists()


def test_config_file_problems(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["watch", "-c", str(missing)]) == 2
    assert "nope.yaml: cannot read the config file" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("jobs: [inbox: {\n")
    assert main(["watch", "-c", str(broken), "--check"]) == 2
    assert "broken.yaml: not valid YAML" in capsys.readouterr().err


def test_a_config_not_in_utf8_or_with_an_alias_loop_is_one_line(tmp_path, capsys, monkeypatch):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"jobs:\n  - inbox: Entr\xe9e\n    outbox: out\n")
    assert main(["watch", "-c", str(latin), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{latin}: not UTF-8 text (byte 0xe9 at offset 21)" in err, err
    monkeypatch.chdir(tmp_path)  # ./config.yaml, found without -c
    (tmp_path / "config.yaml").write_bytes(latin.read_bytes())
    assert main(["watch", "--check"]) == 2
    assert "config.yaml: not UTF-8 text" in capsys.readouterr().err
    loop = tmp_path / "loop.yaml"
    loop.write_text("jobs: &j\n  - inbox: in\n    outbox: out\n    settings: *j\n")
    assert main(["watch", "-c", str(loop), "--check"]) == 2
    err = capsys.readouterr().err
    assert "loop.yaml" in err and "settings: must be a mapping" in err and "Traceback" not in err, err
    # nested aliases ("billion laughs": 10^7 nodes if expanded) are read as fast as the text
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("\n".join([*levels, "jobs: [{inbox: in, outbox: out, settings: *g}]", ""]))
    assert main(["watch", "-c", str(laughs), "--check"]) == 2
    assert "jobs[0].settings: must be a mapping" in capsys.readouterr().err


def test_check_refuses_a_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    for change, key in (
        ({"jobs": [{"inbox": "notes.txt", "outbox": "o"}]}, "jobs[0].inbox"),
        ({"jobs": [{"inbox": "in", "outbox": "notes.txt/sub"}]}, "jobs[0].outbox"),
        ({"jobs": [{"inbox": "in", "outbox": "o", "failed": "notes.txt"}]}, "jobs[0].failed"),
        ({"state_dir": "notes.txt/state"}, "state_dir"),
    ):
        cfg = write_config(tmp_path, "bad.yaml", **change)
        for args in (["--check"], ["--once"]):
            assert main(["watch", "-c", str(cfg), *args]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1, err
            assert f"{key}: {tmp_path / 'notes.txt'} is a file, not a folder" in err, err
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "in").exists()


def test_dask_without_the_extra_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "knockout.distributed", None)  # as if knockout[dask] were missing
    cfg = write_config(tmp_path)
    assert main(["watch", "-c", str(cfg), "--dask", "tcp://127.0.0.1:1", "--once"]) == 2
    assert "pip install 'knockout[dask]'" in capsys.readouterr().err


USER_ERRORS = [
    ({"retries": "many"}, "retries: 'many' is not allowed; use an integer from 0 to 100"),
    ({"jobs": [{"inbox": "in", "outbox": "out", "colour": "grey"}]}, "jobs[0]: unknown key 'colour'"),
    # an executor mapping without its scheduler (max_in_flight alone is for Dask): say what is missing
    ({"executor": {"max_in_flight": 4}}, "executor.dask: missing; a mapping executor is a Dask scheduler"),
    ({"jobs": [{"inbox": "in", "outbox": "in/out"}]}, "the outbox folder must be outside the inbox"),
    (
        {"jobs": [{"name": "a", "inbox": "in", "outbox": "o1"}, {"name": "b", "inbox": "./in", "outbox": "o2"}]},
        "two jobs cannot watch the same folder",
    ),
]


@pytest.mark.parametrize(("change", "needle"), USER_ERRORS)
def test_knockout_watch_refuses_a_bad_config_before_starting(tmp_path, change, needle):
    """As a user runs it (no --check): exit 2, one message naming the file and the key, nothing created."""
    cfg = write_config(tmp_path, "studio.yaml", **change)
    r = knockout("watch", "-c", str(cfg), cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"knockout: error: {cfg}: ") and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["studio.yaml"]


def test_watch_starts_for_a_user_whose_home_it_cannot_read(tmp_path, monkeypatch, capsys):
    """`sudo -u knockout knockout watch` keeps HOME=/root, which that user cannot read: no crash."""
    import os

    home = tmp_path / "root"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(home)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setattr(os, "stat", stat)
    cfg = write_config(tmp_path)
    assert main(["watch", "-c", str(cfg), "--check"]) == 0, capsys.readouterr().err
    assert "valid" in capsys.readouterr().out


def test_the_same_folder_under_two_names_is_still_shared(tmp_path, capsys):
    """A symbolic link is no way round the checks: two inboxes, or an outbox in its inbox, through a link."""
    (tmp_path / "in").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "in")
    jobs = [{"name": "a", "inbox": "in", "outbox": "o1"}, {"name": "b", "inbox": "alias", "outbox": "o2"}]
    cfg = write_config(tmp_path, "shared.yaml", jobs=jobs)
    assert main(["watch", "-c", str(cfg), "--check"]) == 2
    assert "jobs[1].inbox" in capsys.readouterr().err
    cfg = write_config(tmp_path, "nested.yaml", jobs=[{"inbox": "in", "outbox": "alias/out"}])
    assert main(["watch", "-c", str(cfg), "--check"]) == 2
    assert "jobs[0].outbox" in capsys.readouterr().err


def test_a_state_dir_inside_an_inbox_through_a_link_is_refused(tmp_path, capsys):
    """state_dir named through a link to the inbox (alias/.state, alias -> in): inside it all the same
    (the by-name check alone passes it; the link case the other way round is test_daemon_claims_safety's)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "in")
    cfg = write_config(tmp_path, jobs=[{"inbox": "in", "outbox": "out"}], state_dir="alias/.state")
    assert main(["watch", "-c", str(cfg), "--check"]) == 2
    assert "state_dir" in capsys.readouterr().err


def test_config_yaml_studio_example_gives_each_job_its_own_folders_and_settings(tmp_path):
    """The commented two-job example in config.yaml, uncommented in place of the default job."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("#   jobs:")
    example = []
    for line in lines[start:]:
        if not line.startswith("#  "):
            break
        example.append(line[1:])
    yaml_text = text[: text.index("\njobs:\n")] + "\n" + textwrap.dedent("\n".join(example)) + "\n"
    grey, white = parse_config(yaml_text, base=tmp_path, name="config.yaml").jobs
    for job, backdrop in ((grey, "grey"), (white, "white")):
        assert job.name == backdrop and job.inbox == tmp_path / "inbox" / f"{backdrop}-backdrop"
        assert (job.outbox, job.processed, job.failed) == tuple(
            tmp_path / kind / backdrop for kind in ("outbox", "processed", "failed")
        )
    assert (grey.settings.method, white.settings.method) == ("kmeans", "threshold")
    assert (grey.settings.feather, white.settings.feather) == (1.5, 3)
