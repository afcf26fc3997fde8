"""Classification heads on pooled features."""

from __future__ import annotations

from torch import nn


class Head(nn.Sequential):
    """Linear, or ``hidden > 0``: Linear -> ReLU -> (Dropout) -> Linear, the study's 256-unit layer."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 0, dropout: float = 0.0) -> None:
        if hidden > 0:
            layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(hidden, num_classes))
        else:
            layers = [nn.Dropout(dropout)] if dropout > 0 else []
            layers.append(nn.Linear(in_features, num_classes))
        super().__init__(*layers)
