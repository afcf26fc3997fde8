"""Smoke-sized runs of the benchmarks: each measures both sides and reports a ratio."""

import pytest

from bench import backbone, end_to_end, extraction, loading, partial


@pytest.mark.slow
@pytest.mark.parametrize("module", [loading, backbone, extraction, partial, end_to_end])
def test_benchmark_smoke(module):
    result = module.run(quick=True)
    assert result.baseline_value > 0 and result.contender_value > 0
    assert result.ratio == pytest.approx(result.contender_value / result.baseline_value, rel=1e-6) or \
        result.ratio == pytest.approx(result.baseline_value / result.contender_value, rel=1e-6)
    assert result.save().is_file()
