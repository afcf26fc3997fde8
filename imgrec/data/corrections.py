"""Label corrections as an overlay: ``data.corrections=<csv>`` adds or removes labels on top of the
annotations, which are never modified.

The CSV is what the dashboard's label review exports: ``image,label,action,verdict`` (other columns are
ignored). ``action`` is ``add`` or ``remove``; only rows with ``verdict`` ``accept`` change a label,
``reject`` rows and rows not reviewed yet (empty verdict) are counted and skipped. The corrected targets
make a new :class:`~imgrec.data.record.Dataset`, so its ``fingerprint`` (and every cache keyed by it,
such as the feature cache) follows the corrected labels.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgrec.data.record import Dataset
from imgrec.utils.errors import ImgrecError

COLUMNS = ("image", "label", "action", "verdict")
ACTIONS = ("add", "remove")
VERDICTS = ("accept", "reject", "")


@dataclass(frozen=True)
class Correction:
    line: int  # line of the CSV (the header is line 1), for messages
    image: str
    label: str
    action: str
    verdict: str


@dataclass
class Corrections:
    path: Path
    sha256: str
    rows: list[Correction]

    def accepted(self) -> list[Correction]:
        return [r for r in self.rows if r.verdict == "accept"]

    def counts(self) -> dict[str, int]:
        """Rows by outcome: accepted additions and removals, rejected, not reviewed."""
        return {"add": sum(r.action == "add" for r in self.accepted()),
                "remove": sum(r.action == "remove" for r in self.accepted()),
                "rejected": sum(r.verdict == "reject" for r in self.rows),
                "unreviewed": sum(r.verdict == "" for r in self.rows)}

    def record(self) -> dict[str, object]:
        """What provenance and the run log keep: the file, its hash and the counts."""
        return {"file": str(self.path), "sha256": self.sha256, **self.counts()}

    def apply(self, data: Dataset) -> Dataset:
        """A copy of ``data`` with the accepted rows applied; unknown images or labels are errors."""
        return dataclasses.replace(data, targets=self.corrected(data.targets, data.names, data.label_names))

    def corrected(self, targets: np.ndarray, names: list[str], label_names: list[str]) -> np.ndarray:
        """A copy of ``targets`` (rows named ``names``) with the accepted rows applied."""
        row_of = {name: i for i, name in enumerate(names)}
        col_of = {name: j for j, name in enumerate(label_names)}
        targets = np.array(targets, copy=True)
        for r in self.accepted():
            if r.image not in row_of:
                raise ImgrecError(f"{self.path}: line {r.line}: unknown image {r.image!r} (not in the dataset)")
            if r.label not in col_of:
                raise ImgrecError(f"{self.path}: line {r.line}: unknown label {r.label!r} "
                                  f"(labels: {', '.join(label_names)})")
            targets[row_of[r.image], col_of[r.label]] = 1 if r.action == "add" else 0
        return targets


def read_corrections(path: str | Path) -> Corrections:
    """Parse and check the CSV: the four columns, known actions and verdicts, and no (image, label) pair
    given two different outcomes."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: corrections file does not exist")
    raw = path.read_bytes()
    reader = csv.DictReader(raw.decode("utf-8-sig").splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ImgrecError(f"{path}: missing column(s) {', '.join(missing)} (need {','.join(COLUMNS)})")
    rows: list[Correction] = []
    seen: dict[tuple[str, str], Correction] = {}
    for line, cells in enumerate(reader, start=2):
        if None in cells or any(cells[c] is None for c in COLUMNS):
            raise ImgrecError(f"{path}: line {line}: malformed row (expected the columns {','.join(COLUMNS)})")
        values = {c: cells[c].strip() for c in COLUMNS}
        row = Correction(line, values["image"], values["label"], values["action"].lower(), values["verdict"].lower())
        if not row.image or not row.label:
            raise ImgrecError(f"{path}: line {line}: malformed row (empty image or label)")
        if row.action not in ACTIONS:
            raise ImgrecError(f"{path}: line {line}: action {values['action']!r} is not one of {', '.join(ACTIONS)}")
        if row.verdict not in VERDICTS:
            raise ImgrecError(f"{path}: line {line}: verdict {values['verdict']!r} is not accept, reject or empty")
        earlier = seen.get((row.image, row.label))
        if earlier is not None and (earlier.action, earlier.verdict) != (row.action, row.verdict):
            raise ImgrecError(f"{path}: line {line}: conflicting verdict for {row.image} {row.label} "
                              f"({row.action} {row.verdict or 'unreviewed'} here, {earlier.action} "
                              f"{earlier.verdict or 'unreviewed'} on line {earlier.line})")
        if earlier is None:
            seen[(row.image, row.label)] = row
            rows.append(row)
    return Corrections(path, hashlib.sha256(raw).hexdigest(), rows)


def apply_corrections(data: Dataset, path: str | Path) -> tuple[Dataset, Corrections]:
    corrections = read_corrections(path)
    return corrections.apply(data), corrections
