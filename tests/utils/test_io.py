"""imgrec.utils.io: results are written whole (temp file, then rename) with ordinary file permissions."""

import os
import stat

from imgrec.utils.io import UMASK, write_json, write_text


def test_written_files_are_whole_and_readable_as_open_would_make_them(tmp_path):
    path = write_text(tmp_path / "sub" / "a.txt", "hello\n")
    assert path.read_text() == "hello\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~UMASK
    write_json(path, {"b": 1.5})
    assert path.read_text() == '{\n  "b": 1.5\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temporary file left beside it
