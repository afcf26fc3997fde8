"""Engines that run a frozen :class:`~imgrec.models.backbones.Backbone` for feature extraction (typed
here as the ``nn.Module`` it is: this package sits below ``models/`` and imports nothing from it).

:func:`features_fn` returns a callable with the backbone's contract, uint8 NCHW images at any size ->
``(N, num_features)`` float32 features, run by one of :data:`ENGINES`:

- ``eager``: the backbone as it is (fp32);
- ``channels_last``: NHWC memory format for the convolutions (``Backbone.speed_up``);
- ``compile``: ``torch.compile`` of the convolutional net, compiled at the first call;
- ``onnxruntime`` / ``openvino``: the backbone, resize and normalisation included, exported to ONNX
  for each input size it meets (traced at that size, dynamic batch) and run by that runtime on the CPU.

All compute the same function; they differ in rounding only (``tests/features/test_engines.py`` bounds it).
The feature cache (``cache.engine``) and ``imgrec predict`` (``engine``) run the engine
:func:`settle_encoder` settles on: :func:`resolve_engine`'s pick, tried on the first batch.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from imgrec.features.extraction import Encoder, backbone_encoder
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

ENGINES = ("eager", "channels_last", "compile", "onnxruntime", "openvino")
SETTINGS = ("auto", *ENGINES)  # what ``cache.engine`` accepts
OPSET = 18


def features_fn(backbone: nn.Module, engine: str = "eager") -> Encoder:
    """``backbone`` (frozen, put in eval mode here) as run by ``engine``; the backbone itself is left
    unchanged (the torch switches act on a copy). Features are plain tensors (``no_grad``, not
    ``inference_mode``): they become the inputs of a head that is trained."""
    if engine not in ENGINES:
        raise ImgrecError(f"engine={engine}: expected one of {', '.join(ENGINES)}")
    backbone.eval()
    if engine == "eager":
        return torch.no_grad()(backbone)
    if engine in ("channels_last", "compile"):
        fast = copy.deepcopy(backbone)
        fast.speed_up(channels_last=engine == "channels_last", compile=engine == "compile")
        return torch.no_grad()(fast)
    return RuntimeFeatures(backbone, engine)


def check_setting(setting: str, key: str = "cache.engine") -> None:
    """``key`` names the setting in the user's command (``engine`` for predict)."""
    if setting not in SETTINGS:
        raise ImgrecError(f"{key}={setting}: expected one of {', '.join(SETTINGS)}")


def resolve_engine(setting: str, device: torch.device) -> str:
    """The engine a ``cache.engine`` setting means on ``device``. On a GPU always ``eager`` (float32, as
    everywhere: :func:`imgrec.features.extraction.backbone_encoder`); on the CPU ``auto`` is the fastest
    installed runtime (bench ``engines``: OpenVINO, then onnxruntime), else ``eager``."""
    check_setting(setting)
    if device.type != "cpu":
        return "eager"
    if setting != "auto":
        return setting
    return next((e for e in ("openvino", "onnxruntime") if importlib.util.find_spec(e) is not None), "eager")


def settle_encoder(backbone: nn.Module, setting: str, device: torch.device, first: torch.Tensor,
                   task: str = "features", verb: str = "extracting") -> tuple[str, Encoder]:
    """The engine ``setting`` means on ``device`` for ``backbone``, tried once on the batch ``first``, and
    its encoder. One that fails there (export or runtime) is logged in one line and replaced by eager:
    an optional engine never costs the run. ``task`` and ``verb`` name the work in that line."""
    engine, encoder = resolve_engine(setting, device), None
    if engine != "eager":
        try:
            encoder = features_fn(backbone, engine)
            shape = tuple(encoder(first).shape)
            if shape != (len(first), backbone.num_features):
                raise ValueError(f"features of shape {shape}, expected {(len(first), backbone.num_features)}")
        except Exception as err:  # noqa: BLE001 - whatever the runtime raises, eager is always there
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            log.warning("%s: engine %s failed on the first batch of %s (%s: %s); %s with eager instead", task, engine,
                        backbone.name, type(err).__name__, reason, verb)
            engine, encoder = "eager", None
    return engine, encoder or backbone_encoder(backbone, device)


def onnx_bytes(backbone: nn.Module, height: int, width: int) -> bytes:
    """The backbone as an ONNX graph taking uint8 NCHW at ``height`` x ``width`` (dynamic batch)."""
    buffer = io.BytesIO()
    example = torch.zeros(2, 3, height, width, dtype=torch.uint8)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the resize branch is fixed at this size
        torch.onnx.export(backbone, (example,), buffer, input_names=["images"], output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    return buffer.getvalue()


class RuntimeFeatures:
    """A backbone run by onnxruntime or OpenVINO: one compiled model per input size met."""

    def __init__(self, backbone: nn.Module, engine: str) -> None:
        self.backbone, self.engine = backbone, engine
        self.models: dict[tuple[int, int], Callable[[np.ndarray], np.ndarray]] = {}

    def compiled(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        if (height, width) not in self.models:
            model = onnx_bytes(self.backbone, height, width)
            self.models[height, width] = onnxruntime_model(model) if self.engine == "onnxruntime" else \
                openvino_model(model)
        return self.models[height, width]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ImgrecError(f"engine={self.engine}: takes uint8 NCHW images, got {images.dtype} "
                              f"{tuple(images.shape)}")
        run = self.compiled(images.shape[-2], images.shape[-1])
        features = torch.from_numpy(run(np.ascontiguousarray(images.cpu().numpy())))
        return features.to(getattr(self.backbone, "feature_dtype", torch.float32))  # fp16 for activations


def onnxruntime_model(model: bytes) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})[0]


def openvino_model(model: bytes) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import openvino as ov
    except ImportError as err:
        raise ImgrecError("engine=openvino: the openvino package is not installed (pip install openvino)") from err
    core = ov.Core()
    # fp32 as the other engines: on CPUs with bf16 units OpenVINO otherwise computes in bf16 (~5% off).
    # No pinning of its threads to cores: on cores other processes share, a pinned thread waits for its
    # core (measured under load average 4 on 2 cores: 46-76 images/s pinned, 74-98 not; bench/RESULTS.md).
    compiled = core.compile_model(core.read_model(model=model, weights=b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False})
    return lambda x: compiled(x)[0]
