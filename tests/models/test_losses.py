import torch

from imgrec.models.losses import SeedBCE


def test_seed_bce_matches_the_formula_and_stays_finite():
    logits = torch.tensor([[1e4, -1e4, 0.3], [-2.0, 50.0, -50.0]])
    y = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    s = 0.99 * torch.sigmoid(logits) + 0.005
    expected = -(y * s.log() + (1 - y) * (1 - s).log()).sum(1).mean()
    loss = SeedBCE()(logits, y)
    assert torch.isfinite(loss) and torch.allclose(loss, expected)
    assert loss < -2 * torch.log(torch.tensor(0.005)) * 3  # bounded per class


def test_pos_weight_from_train_frequencies():
    import numpy as np

    from imgrec.models.losses import pos_weighted_bce

    y = np.zeros((100, 3), dtype=np.uint8)
    y[:10, 0] = 1  # 10 positives: weight 90/10
    y[:1, 1] = 1  # 1 positive: 99, capped at 30
    loss = pos_weighted_bce(y, max_weight=30.0)  # label 2 has none: weight 99 -> capped
    assert torch.allclose(loss.pos_weight, torch.tensor([9.0, 30.0, 30.0]))
