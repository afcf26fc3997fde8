"""imgrec.config.compose: the configs must be found, or the command is refused in one line."""

import shutil
import subprocess
import sys

from tests.conftest import ROOT


def test_a_package_installed_without_its_configs_is_refused_in_one_line(tmp_path):
    """What a plain (non-editable) install gives: the package alone, no conf/ beside it."""
    shutil.copytree(ROOT / "imgrec", tmp_path / "imgrec", ignore=shutil.ignore_patterns("__pycache__"))
    for command in ("run", "predict"):
        r = subprocess.run([sys.executable, "-m", "imgrec.cli", command], cwd=tmp_path, capture_output=True,
                           text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().splitlines()[-1] == (
            f"error: {tmp_path / 'conf'}: imgrec's configs are not there; install imgrec from a checkout with "
            "`pip install -e <checkout>` (make install), not as a plain package")
