"""The GPU benchmark's table in ``bench/RESULTS.md``: the section between the GPU markers is replaced by
each run of ``python -m bench gpu`` (the rest of the file is left as it is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- bench gpu: begin -->", "<!-- bench gpu: end -->"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def section(cases: list[Any], details: dict[str, Any]) -> str:
    """Markdown: the device and conditions, then one row per case."""
    m = details.get("machine", {})
    lines = [BEGIN, "## GPU (`python -m bench gpu`)", "",
             f"{details['device']}, {m.get('cores')} CPU cores, torch {m.get('torch')} (CUDA {details.get('cuda')}, "
             f"cuDNN {details.get('cudnn')}), {details.get('date')}{', --quick' if details.get('quick') else ''}. "
             f"GPU busy: the mean of {details['utilisation_source']} over each timed window (the share of time "
             "a kernel ran). Training cases: `trainer=gpu` (bf16-mixed, loader workers from the CPU count, "
             "pinned memory), synthetic images.", "",
             "| workload | variant | batch | images/s | GPU busy | peak GiB | case s | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for c in cases:
        lines.append(f"| {c.workload} | {c.variant} | {c.batch_size} | {_cell(c.images_per_s, '.0f')} | "
                     f"{_cell(c.gpu_busy, '.0f')}{'%' if c.gpu_busy is not None else ''} | "
                     f"{_cell(c.peak_gib, '.2f')} | {c.seconds:.0f} | {c.note} |")
    return "\n".join([*lines, END])


def write_section(cases: list[Any], details: dict[str, Any], path: Path = RESULTS) -> Path:
    """Replace the GPU section of ``path`` (or append one) with this run's."""
    text = path.read_text() if path.is_file() else ""
    new = section(cases, details)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + new + "\n"
    path.write_text(text)
    return path
