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
