"""Smoke-sized runs of the benchmarks: each measures both sides and reports a ratio; the GPU benchmark's
parts that need no GPU."""

import time

import pytest
import torch

from bench import backbone, end_to_end, extraction, gpu, loading, partial, predict, scaling
from bench.gpu_monitor import UtilisationMonitor, best_reader
from bench.gpu_report import write_section
from tests.conftest import ROOT, run_in_process


@pytest.mark.slow
@pytest.mark.parametrize("module", [loading, backbone, extraction, end_to_end, scaling, predict, partial])
def test_benchmark_smoke(module):
    result = module.run(quick=True)
    assert result.baseline_value > 0 and result.contender_value > 0
    assert result.ratio == pytest.approx(result.contender_value / result.baseline_value, rel=1e-6) or \
        result.ratio == pytest.approx(result.baseline_value / result.contender_value, rel=1e-6)
    assert result.save().is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal on a machine without CUDA")
def test_gpu_bench_without_cuda_is_one_line(tmp_path):
    r = run_in_process(["bench", "gpu"], cwd=ROOT)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("bench gpu: no CUDA GPU is visible")


def test_gpu_bench_runs_each_case_within_the_budget(monkeypatch, tmp_path):
    """The parts that need no GPU: a failing case is recorded and the next one runs, a case not expected to
    end within the budget is skipped, the JSON is saved after every case, the headline is the best
    fine-tuning case against the 90% target, and the RESULTS.md section replaces its own."""
    for name in ("reset_peak_memory_stats", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, lambda *a: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 2**30)

    def broken(monitor):
        raise RuntimeError("CUDA error: out of memory\nsecond line")

    cases = [(gpu.Case("fine-tuning Lite0 224 px", "augment in workers", 64), lambda m: (900.0, 80.0, "3 workers")),
             (gpu.Case("fine-tuning Lite0 224 px", "augment on device", 64), lambda m: (1100.0, 93.0, "")),
             (gpu.Case("extraction Lite0 224 px", "eager bf16", 128), broken),
             (gpu.Case("extraction Lite0 224 px", "compile bf16", 128, expected_s=1e6), lambda m: (1.0, 1.0, ""))]
    saved = []
    done = gpu.run_cases(cases, UtilisationMonitor(None), 100.0, lambda c: saved.append(len(c)))
    assert saved == [1, 2, 3, 4] and done[0].peak_gib == 1.0
    assert done[2].note == "failed: RuntimeError: CUDA error: out of memory" and done[2].images_per_s is None
    assert done[3].note.startswith("skipped") and done[3].images_per_s is None
    result = gpu.summary(done, {"device": "a GPU"})
    assert result.met and result.contender_value == 93.0 and "augment on device" in result.contender
    assert not gpu.summary(done[:1], {}).met
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nkept\n")
    details = {"device": "A GPU", "utilisation_source": "NVML", "machine": {"cores": 16}}
    for cases_written in (done, done[:1]):
        write_section(cases_written, details, results)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nkept\n") and text.count("## GPU") == 1
    assert "| fine-tuning Lite0 224 px | augment in workers | 64 | 900 | 80% | 1.00 |" in text
    assert "compile bf16" not in text  # the second run's table replaced the first's


def test_utilisation_monitor_averages_its_samples():
    readings = iter([50.0, 70.0, 90.0])
    monitor = UtilisationMonitor(lambda: next(readings, 90.0), interval=0.01)
    monitor.start()
    while len(monitor.samples) < 3:
        time.sleep(0.01)
    assert 50.0 < monitor.stop() <= 90.0
    silent = UtilisationMonitor(None)
    silent.start()
    assert silent.stop() is None
    if not torch.cuda.is_available():
        source, read = best_reader(0)
        assert read is None and source.startswith("none (")


def test_gpu_bench_training_window_stops_the_fit(monkeypatch):
    """The fine-tuning and scratch cases' harness (the real configs, callbacks and Window), run on the CPU:
    the fit stops once the window has its steps, long before max_steps."""
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(gpu, "TRAINER", "trainer=cpu")
    monkeypatch.setattr(gpu, "UNIQUE_IMAGES", 40)
    for name, value in (("WARMUP", 2), ("MIN_STEPS", 3), ("MIN_SECONDS", 0.0), ("MAX_STEPS", 50)):
        monkeypatch.setattr(gpu, name, value)
    windows = []
    monkeypatch.setattr(gpu.Window, "close", lambda self: windows.append(self) or setattr(self, "result", (1.0, None)))
    images_per_s, busy, note = gpu.train_case([*gpu.SCRATCH, "model.net.input_size=32", "data.num_workers=0"], 32,
                                              8, UtilisationMonitor(None))
    assert len(windows) == 1 and windows[0].done == 5  # closed after 2 + 3 steps, and no step ran after it
    assert (images_per_s, busy, note) == (1.0, None, "0 loader workers")
