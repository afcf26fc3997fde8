"""Cutting a backbone between its stages: a frozen lower part (cached) and a trained upper part.

``model.net.train_blocks=K`` trains the last ``K`` stages of each backbone and everything the backbone
runs after them (timm EfficientNet's ``conv_head``/``bn2``, ConvNeXt's ``norm_pre``, the pooling). The
stages are found by name (:func:`stage_names`): the children of ``blocks`` or ``stages`` (timm
EfficientNet, MobileNet, ConvNeXt, CSP, ViT, ...), ``layer1..layerN`` (ResNet-style, torchvision and
timm), else the modules timm's ``feature_info`` names after the stem (RegNet's ``s1..s4``).

The split is made on the backbone's own ``forward`` traced by ``torch.fx`` with each stage a leaf: the
cut is the input of stage ``n - K``; the lower graph computes it, the upper graph computes the
pooled features from it. Both call the backbone's own modules (no copies), so the whole net's
``state_dict``, checkpoints, predict and export are unchanged; a model whose layers after the cut read
anything from before it has no cut.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from imgrec.models.backbones import Backbone, preprocess
from imgrec.utils.errors import ImgrecError


def stage_names(net: nn.Module) -> list[str]:
    """The qualified names of ``net``'s stages, input to output; empty when none is known."""
    for container in ("blocks", "stages"):
        children = getattr(net, container, None)
        if isinstance(children, (nn.Sequential, nn.ModuleList)) and len(children) > 0:
            return [f"{container}.{name}" for name, _ in children.named_children()]
    layers = list(itertools.takewhile(lambda name: isinstance(getattr(net, name, None), nn.Module),
                                      (f"layer{i}" for i in itertools.count(1))))
    if layers:
        return layers
    info = getattr(net, "feature_info", None)  # timm: its first entry is the stem's output
    return [entry["module"] for entry in info][1:] if isinstance(info, list) else []


class _StageTracer(fx.Tracer):
    """Traces only ``unfold`` (the root and the containers of the stages): everything else is a leaf."""

    def __init__(self, unfold: set[str]) -> None:
        super().__init__()
        self.unfold = unfold

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname not in self.unfold


def _subgraph(graph: fx.Graph, cut: fx.Node, upper: bool) -> fx.Graph:
    """The nodes the output needs, with ``cut`` as the input (``upper``); or the nodes ``cut`` needs."""
    end = next(n for n in graph.nodes if n.op == "output")
    needed, todo = set(), [end.args[0] if upper else cut]
    while todo:
        node = todo.pop()
        if node not in needed:
            needed.add(node)
            if not (upper and node is cut):
                todo.extend(node.all_input_nodes)
    if upper and any(n.op == "placeholder" for n in needed):
        raise ValueError("a layer after the cut reads the input")
    out, env = fx.Graph(), {}
    if upper:
        env[cut] = out.placeholder("activation")
    for node in graph.nodes:
        if node in needed and node not in env:
            env[node] = out.node_copy(node, lambda n: env[n])
    out.output(env[end.args[0]] if upper else env[cut])
    return out


class Trunk(nn.Module):
    """The frozen part of a backbone below a cut, as the feature cache runs it: uint8 NCHW images ->
    resized, normalised -> the activations at the cut, flattened, in fp16 (the cache's format:
    ``num_features`` = C x H x W at ``input_size``). Its ``state_dict`` is the lower layers' only."""

    feature_dtype = torch.float16

    def __init__(self, backbone: Backbone, lower: fx.GraphModule, stage: str) -> None:
        super().__init__()
        self.lower, self.input_size = lower, int(backbone.input_size)
        self.name = f"{backbone.name} below {stage}"
        self.register_buffer("mean", backbone.mean.clone(), persistent=False)
        self.register_buffer("std", backbone.std.clone(), persistent=False)
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.input_size, self.input_size, dtype=torch.uint8, device=self.mean.device)
            self.activation_shape = tuple(self.activations(probe).shape[1:])
        self.num_features = math.prod(self.activation_shape)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        return self.lower(preprocess(x, self.input_size, self.mean, self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x).flatten(1).half()


@dataclass
class Cut:
    """A backbone cut before its stage ``stage``: ``lower`` (frozen) and ``upper`` (trained) share its modules."""

    backbone: Backbone
    stage: str
    lower: fx.GraphModule
    upper: fx.GraphModule
    _shapes: dict[int, tuple[int, ...]] = field(default_factory=dict)  # activation shape per input size

    def trunk(self) -> Trunk:
        trunk = Trunk(self.backbone, self.lower, self.stage).eval()
        self._shapes[trunk.input_size] = trunk.activation_shape
        return trunk

    @property
    def activation_shape(self) -> tuple[int, ...]:
        """(C, H, W) at the cut, at the backbone's input size."""
        if self.backbone.input_size not in self._shapes:
            self.trunk()
        return self._shapes[self.backbone.input_size]

    def features(self, activations: torch.Tensor) -> torch.Tensor:
        """Flattened activations at the cut (as :class:`Trunk` gives them) -> the backbone's pooled features.
        In channels-last memory format: the trained stages' forward and backward on the CPU take 0.75x
        the time they take in NCHW (measured at the Lite0 224 px cut before 2 stages; bench ``partial``)."""
        maps = activations.float().view(len(activations), *self.activation_shape)
        return self.upper(maps.contiguous(memory_format=torch.channels_last))


def cut_backbone(backbone: Backbone, train_blocks: int) -> Cut:
    """Cut ``backbone`` so that its last ``train_blocks`` stages (and all after them) can train."""
    where = f"model.net.train_blocks={train_blocks}"
    stages = stage_names(backbone.net)
    if not stages:
        raise ImgrecError(f"{where}: backbone {backbone.name!r} has no known cut (no blocks/stages/layerN "
                          "modules, no timm feature_info); use train_blocks=0 or freeze=false")
    if not 1 <= train_blocks <= len(stages):
        raise ImgrecError(f"{where}: backbone {backbone.name!r} has {len(stages)} stages ({stages[0]} .. "
                          f"{stages[-1]}): use 1 to {len(stages)}, or 0 for the frozen backbone")
    stage = stages[len(stages) - train_blocks]
    unfold = {""} | {".".join(name.split(".")[:i]) for name in stages for i in range(1, name.count(".") + 1)}
    was_training = backbone.net.training
    backbone.net.eval()  # the traced code reads self.training once (a dropout before the pooling, say)
    try:
        graph = _StageTracer(unfold).trace(backbone.net)
        calls = [n for n in graph.nodes if n.op == "call_module" and n.target == stage]
        if len(calls) != 1 or len(calls[0].all_input_nodes) != 1:
            raise ValueError(f"{stage} is called {len(calls)} time(s)")
        cut = calls[0].all_input_nodes[0]
        lower = fx.GraphModule(backbone.net, _subgraph(graph, cut, upper=False))
        upper = fx.GraphModule(backbone.net, _subgraph(graph, cut, upper=True))
    except Exception as err:  # fx cannot trace it, or its layers do not split at the stage
        reason = (str(err).splitlines() or [""])[0][:120]
        raise ImgrecError(f"{where}: backbone {backbone.name!r} has no known cut before {stage} "
                          f"({type(err).__name__}: {reason}); use train_blocks=0") from None
    finally:
        backbone.net.train(was_training)
    if {id(p) for p in lower.parameters()} & {id(p) for p in upper.parameters()}:
        raise ImgrecError(f"{where}: backbone {backbone.name!r} has no known cut before {stage} "
                          "(its layers below and above share weights)")
    return Cut(backbone, stage, lower, upper)
