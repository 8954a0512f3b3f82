"""The official HFA-GP encoders' PyTorch state dicts -> the Flax params of `encoders` (numpy only).

Official modules (bbaaii/HFA-GP, ``networks/encoder3d.py``, ``networks/headnerf.py``) and the params they fill:

  ``Encoder`` (RGB; ``HeadNeRF_final.encoder``)           -> `RGBEncoder` params
  ``Weights_3DMM`` (3DMM, and the audio head)              -> `ExpressionEncoder` params / `AudioEncoder` 'fc'
  ``AudioNet`` (``trainer_audio.Trainer.AudNet``)           -> `AudioEncoder` 'audio_net'
  ``AudioAttNet`` (``trainer_audio.Trainer.AudAttNet``)     -> `AudioEncoder` 'attention'

Weight layouts (PyTorch -> Flax):

  EqualConv2d ``weight`` [out, in, kh, kw]     -> ``kernel`` [kh, kw, in, out]  (HWIO: transpose 2, 3, 1, 0)
  EqualLinear / Linear ``weight`` [out, in]    -> ``kernel`` [in, out]
  Conv1d ``weight`` [out, in, k]               -> ``kernel`` [k, in, out]       (transpose 2, 1, 0)
  FusedLeakyReLU ``bias`` [1, C, 1, 1]         -> ``bias`` [C]
  other biases                                 -> unchanged

The equalized-lr scales (1/sqrt(fan_in), ``lr_mul``) are applied at run time on both sides, so the stored
weights are copied as they are. The ``Blur`` buffers (``*.kernel``) must be the fixed [1, 3, 3, 1] filter
that `encoders.layers.blur` applies; they are checked, not copied. Names: the official ``Sequential``
indices become the Flax submodule names (``net_app.convs.<i>`` -> ``convs_<i>``; inside a ``ConvLayer``
index 0 is the conv, or the blur when it downsamples; ``fc.<j>`` -> ``fc/fc_<j>``; ``encoder_conv.<2j>`` ->
``conv_<j>``, the odd indices being the parameter-free LeakyReLUs). Every key under the given prefix must
be used, else `OfficialWeightsError` names the leftovers.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from encoders.layers import blur_kernel


class OfficialWeightsError(ValueError):
    """An official state dict does not have the layout of the module it should fill."""


class _Reader:
    """Takes tensors out of one state dict under `prefix`, then checks that none is left."""

    def __init__(self, state: Mapping[str, np.ndarray], prefix: str, what: str):
        self.state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        self.prefix, self.what, self.used = prefix, what, set()

    def has(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str, ndim: int) -> np.ndarray:
        if key not in self.state:
            raise OfficialWeightsError(f"{self.what}: missing {self.prefix}{key}")
        value = np.asarray(self.state[key], np.float32)
        if value.ndim != ndim:
            raise OfficialWeightsError(f"{self.what}: {self.prefix}{key} has shape {value.shape}, expected {ndim}-D")
        self.used.add(key)
        return value

    def check_blur(self, key: str) -> None:
        kernel = self.take(key, 2)
        if kernel.shape != (4, 4) or not np.allclose(kernel, blur_kernel(), rtol=0, atol=1e-7):
            raise OfficialWeightsError(f"{self.what}: {self.prefix}{key} is not the [1,3,3,1] blur filter")

    def finish(self) -> None:
        left = sorted(set(self.state) - self.used)
        if left:
            raise OfficialWeightsError(f"{self.what}: unexpected keys {[self.prefix + k for k in left][:6]}")


def _conv2d(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def _linear(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.T)


def _conv1d(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.transpose(2, 1, 0))


def _act_bias(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b.reshape(-1))


def _mlp(reader: _Reader, prefix: str) -> dict:
    """``<prefix><j>.weight/bias`` (EqualLinear j = 0..) -> {'fc_<j>': {'kernel', 'bias'}}."""
    out, j = {}, 0
    while reader.has(f"{prefix}{j}.weight"):
        out[f"fc_{j}"] = {"kernel": _linear(reader.take(f"{prefix}{j}.weight", 2)),
                          "bias": reader.take(f"{prefix}{j}.bias", 1)}
        j += 1
    if not out:
        raise OfficialWeightsError(f"{reader.what}: no layers {reader.prefix}{prefix}0.weight ...")
    return out


def rgb_encoder_params(state: Mapping[str, np.ndarray], prefix: str = "") -> dict:
    """``Encoder`` state dict (keys ``net_app.convs.*``, ``fc.*`` after `prefix`, e.g. 'encoder.' in a
    ``HeadNeRF_final`` state dict) -> `RGBEncoder` params {'convs_<i>', 'fc'}."""
    r = _Reader(state, prefix, "official RGB Encoder")
    params = {"convs_0": {"conv": {"kernel": _conv2d(r.take("net_app.convs.0.0.weight", 4))},
                          "act": {"bias": _act_bias(r.take("net_app.convs.0.1.bias", 4))}}}
    i = 1
    while r.has(f"net_app.convs.{i}.conv1.0.weight"):
        base = f"net_app.convs.{i}"
        r.check_blur(f"{base}.conv2.0.kernel")
        r.check_blur(f"{base}.skip.0.kernel")
        params[f"convs_{i}"] = {
            "conv1": {"conv": {"kernel": _conv2d(r.take(f"{base}.conv1.0.weight", 4))},
                      "act": {"bias": _act_bias(r.take(f"{base}.conv1.1.bias", 4))}},
            "conv2": {"conv": {"kernel": _conv2d(r.take(f"{base}.conv2.1.weight", 4))},
                      "act": {"bias": _act_bias(r.take(f"{base}.conv2.2.bias", 4))}},
            "skip": {"conv": {"kernel": _conv2d(r.take(f"{base}.skip.1.weight", 4))}},
        }
        i += 1
    params[f"convs_{i}"] = {"kernel": _conv2d(r.take(f"net_app.convs.{i}.weight", 4))}
    params["fc"] = _mlp(r, "fc.")
    r.finish()
    return params


def rgb_input_size(params: Mapping) -> int:
    """The input size of an `RGBEncoder` with these params: 4 * 2^(number of ResBlocks)."""
    return 4 * 2 ** (len([k for k in params if k.startswith("convs_")]) - 2)


def expression_encoder_params(state: Mapping[str, np.ndarray], prefix: str = "") -> dict:
    """``Weights_3DMM`` state dict (keys ``fc.<j>.*`` after `prefix`, e.g. 'weights_3dmm.') ->
    `ExpressionEncoder` params {'fc': {'fc_<j>'}}."""
    r = _Reader(state, prefix, "official Weights_3DMM")
    params = {"fc": _mlp(r, "fc.")}
    r.finish()
    return params


def audio_encoder_params(head_state: Mapping[str, np.ndarray], audio_net_state: Mapping[str, np.ndarray],
                         attention_state: Optional[Mapping[str, np.ndarray]] = None, *,
                         head_prefix: str = "") -> dict:
    """The official audio stack -> `AudioEncoder` params {'audio_net', ['attention',] 'fc'}.

    head_state: the ``Weights_3DMM(64)`` head (keys ``fc.<j>.*`` after `head_prefix`, e.g. 'weights_3dmm.'
    in a ``HeadNeRF_Audio`` state dict); audio_net_state: ``AudioNet``; attention_state: ``AudioAttNet``
    (None for an encoder built without temporal smoothing).
    """
    net = _Reader(audio_net_state, "", "official AudioNet")
    audio_net = {f"conv_{j}": {"kernel": _conv1d(net.take(f"encoder_conv.{2 * j}.weight", 3)),
                               "bias": net.take(f"encoder_conv.{2 * j}.bias", 1)} for j in range(4)}
    for j in range(2):
        audio_net[f"fc_{j}"] = {"kernel": _linear(net.take(f"encoder_fc1.{2 * j}.weight", 2)),
                                "bias": net.take(f"encoder_fc1.{2 * j}.bias", 1)}
    net.finish()
    params = {"audio_net": audio_net, **expression_encoder_params(head_state, head_prefix)}
    if attention_state is not None:
        att = _Reader(attention_state, "", "official AudioAttNet")
        attention = {f"conv_{j}": {"kernel": _conv1d(att.take(f"attentionConvNet.{2 * j}.weight", 3)),
                                   "bias": att.take(f"attentionConvNet.{2 * j}.bias", 1)} for j in range(5)}
        attention["fc"] = {"kernel": _linear(att.take("attentionNet.0.weight", 2)),
                           "bias": att.take("attentionNet.0.bias", 1)}
        att.finish()
        params["attention"] = attention
    return params


__all__ = ["OfficialWeightsError", "audio_encoder_params", "expression_encoder_params", "rgb_encoder_params",
           "rgb_input_size"]
