"""What start-up imports: ``import knockout``, ``knockout --help``, ``status`` and the default cut.

Each case runs in a fresh interpreter (a subprocess) and reports which heavy packages ended up
in ``sys.modules``: the command line's start-up is dominated by imports (issue 13).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import synthetic_headshot
from PIL import Image

HEAVY = ("numpy", "PIL", "scipy", "sklearn", "yaml", "tqdm", "watchdog")


def _loaded(code: str, cwd: Path) -> set[str]:
    """The HEAVY top-level packages imported after running ``code`` in a new interpreter."""
    report = f"import sys, json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def _headshot_png(path: Path) -> None:
    rgb, _ = synthetic_headshot(120, 90)
    Image.fromarray(rgb).save(path)


def test_import_knockout_loads_no_image_library(tmp_path):
    loaded = _loaded("import knockout\nassert knockout.Settings().method == 'threshold'", tmp_path)
    assert loaded == set()


def test_help_loads_no_image_library(tmp_path):
    code = (
        "import contextlib, io\nfrom knockout.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['--help'])\n    except SystemExit as exc:\n        assert exc.code == 0\n"
        "assert 'cut' in out.getvalue() and 'status' in out.getvalue()\n"
    )
    assert _loaded(code, tmp_path) == set()


def test_status_loads_only_yaml(tmp_path):
    code = "from knockout.cli import main\nassert main(['status']) == 1\n"  # no daemon has run here
    assert _loaded(code, tmp_path) == {"yaml"}


def test_lazy_names_are_the_public_objects():
    code = (
        "import knockout.process, knockout\n"  # the submodule knockout.segment is loaded first
        "from knockout import segment, cut_out, Settings, matte\n"
        "assert callable(segment) and segment.__module__ == 'knockout.segment', segment\n"
        "assert knockout.segment is segment and cut_out.__module__ == 'knockout.cutout'\n"
        "assert matte.__name__ == 'knockout.matte'\n"
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_unknown_attribute_is_an_attribute_error():
    import knockout

    with pytest.raises(AttributeError, match="no_such_name"):
        knockout.no_such_name  # noqa: B018


def test_default_cut_never_imports_sklearn(tmp_path):
    _headshot_png(tmp_path / "a.png")
    code = "from knockout.cli import main\nassert main(['cut', 'a.png', '-o', 'out', '-q']) == 0\n"
    loaded = _loaded(code, tmp_path)
    assert (tmp_path / "out" / "a.png").is_file()
    assert "numpy" in loaded  # the cut did run
    assert "sklearn" not in loaded


def test_one_file_cut_imports_no_progress_bar(tmp_path):
    _headshot_png(tmp_path / "a.png")
    code = (
        "import contextlib, io\nfrom knockout.cli import main\n"
        "with contextlib.redirect_stderr(io.StringIO()) as err:\n    assert main(['cut', 'a.png']) == 0\n"
        "assert '1 cut out, 0 failed' in err.getvalue(), err.getvalue()\n"
    )
    loaded = _loaded(code, tmp_path)
    assert (tmp_path / "a-cutout.png").is_file()
    assert "tqdm" not in loaded


def test_a_cut_imports_none_of_numpys_unused_submodules(tmp_path):
    # SciPy's copy of numpy's namespace would import numpy.f2py, numpy.testing (and unittest), ...
    _headshot_png(tmp_path / "a.png")
    code = (
        "import sys\nfrom knockout.cli import main\nassert main(['cut', 'a.png', '-o', 'out', '-q']) == 0\n"
        "unused = {'numpy.f2py', 'numpy.testing', 'numpy.polynomial', 'unittest'} & set(sys.modules)\n"
        "assert not unused, unused\n"
        "import numpy\n"  # numpy's own namespace is as it was, and the submodules still import
        "assert {'f2py', 'testing', 'ma'} <= set(dir(numpy)) & set(numpy.__all__)\n"
        "assert numpy.testing.assert_array_equal is not None and numpy.ma.masked_array([1]).sum() == 1\n"
        "from scipy._lib.array_api_compat import numpy as xp\n"
        "assert xp.asarray([1, 2]).sum() == 3 and xp.linalg is not None\n"
    )
    loaded = _loaded(code, tmp_path)
    assert (tmp_path / "out" / "a.png").is_file()
    assert "scipy" in loaded  # the cut did run the core


def test_importing_knockout_as_a_library_leaves_the_import_machinery_alone(tmp_path):
    code = (
        "import sys\nbefore = list(sys.meta_path)\nimport knockout\nfrom knockout import cut_out\n"
        "assert sys.meta_path == before, sys.meta_path\n"
    )
    _loaded(code, tmp_path)


def test_a_cut_parses_no_scipy_docstrings(tmp_path):
    # SciPy's xp_capabilities parsed ~250 docstrings with its numpydoc parser at import (0.1 s)
    _headshot_png(tmp_path / "a.png")
    code = (
        "import sys\nfrom knockout.cli import main\n"
        "import scipy._lib._docscrape as ds\n"
        "parsed = []\nreal_init = ds.NumpyDocString.__init__\n"
        "ds.NumpyDocString.__init__ = lambda self, *a, **k: (parsed.append(1), real_init(self, *a, **k))[1]\n"
        "assert main(['cut', 'a.png', '-o', 'out', '-q']) == 0\n"
        "assert not parsed, len(parsed)\n"
        "import scipy.ndimage as ndi\n"
        "from scipy._lib._array_api import xp_capabilities_table\n"
        "assert ndi.label in xp_capabilities_table\n"  # what SciPy's own tests read is still filled
        "assert ndi.label.__doc__.lstrip().startswith('Label features in an array.')\n"
        "assert 'Array API Standard Support' not in ndi.label.__doc__\n"
    )
    loaded = _loaded(code, tmp_path)
    assert (tmp_path / "out" / "a.png").is_file()
    assert "scipy" in loaded


def test_the_core_imports_scipys_sparse_solvers_only_when_a_matte_solves(tmp_path):
    # scipy.sparse.linalg (and scipy.linalg with it) is 0.07-0.1 s of a one-off cut's start-up;
    # knockout cut imports it on a thread while it segments, a hard-edged cut never needs it
    code = (
        "import sys\nfrom knockout._lean_imports import install\ninstall()\n"
        "import knockout.process, knockout.commands.cut\n"
        "assert not {'scipy.sparse', 'scipy.linalg'} & set(sys.modules), 'imported at once'\n"
        "from knockout.cli import main\n"
        "assert main(['cut', 'a.png', '-o', 'hard', '-q', '--feather', '0']) == 0\n"
        "assert 'scipy.sparse' not in sys.modules, 'imported by a hard-edged cut'\n"
        "assert main(['cut', 'a.png', '-o', 'soft', '-q']) == 0\n"
        "assert 'scipy.sparse.linalg' in sys.modules\n"
    )
    _headshot_png(tmp_path / "a.png")
    _loaded(code, tmp_path)
    assert (tmp_path / "hard" / "a.png").is_file() and (tmp_path / "soft" / "a.png").is_file()
