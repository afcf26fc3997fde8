"""Write ``requirements.lock`` from pip's installation report (``make lock``): every package a fresh
resolve of ``pyproject.toml`` (with the dev extras) picks, pinned, the project itself left out.

``make install`` passes the file to pip as constraints (``-c``), so two clones install the same versions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = """\
# Versions pinned by `make lock` (a fresh resolve of pyproject.toml with the dev extras, by {pip});
# `make install` installs with these as constraints. Do not edit: change pyproject.toml and run `make lock`.
# Resolved for {platform}.
"""


def main(report_path: str, out_path: str, project: str = "imgrec") -> None:
    report = json.loads(Path(report_path).read_text())
    pins = sorted(((item["metadata"]["name"], item["metadata"]["version"]) for item in report["install"]
                   if item["metadata"]["name"].lower() != project), key=lambda pin: pin[0].lower())
    env = report["environment"]
    text = HEADER.format(pip=f"pip {report['pip_version']}",
                         platform=f"Python {env['python_full_version']} on {env['sys_platform']} "
                                  f"{env['platform_machine']}")
    Path(out_path).write_text(text + "".join(f"{name}=={version}\n" for name, version in pins))
    print(f"{out_path}: {len(pins)} packages pinned")


if __name__ == "__main__":
    main(*sys.argv[1:])
