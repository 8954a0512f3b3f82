"""LPIPS perceptual distance (Zhang et al. 2018), AlexNet and VGG16 variants, in flax.linen.

Reproduces PyPI `lpips` 0.1.x, `lpips.LPIPS(net='alex'|'vgg', version='0.1')` in eval mode with
`normalize=False`:

    d(x0, x1) = sum_K mean_hw( conv1x1_K( (f0_K / (|f0_K| + eps) - f1_K / (|f1_K| + eps))^2 ) )

where f_K (K = 0..4) are five ReLU outputs of the torchvision AlexNet / VGG16 `features` stack
applied to `(x - shift) / scale`, |f| is the L2 norm over channels, eps = 1e-10, and the 1x1 heads
`lin0..lin4` have no bias. With `spatial=True` each head map is bilinearly upsampled (torch's
`align_corners=False`) to the input size instead of averaged.

Layouts: images NHWC, float, values in [-1, 1], any H, W >= `min_input_size(net)`; conv kernels
HWIO; head kernels [C_K, 1]. Variables of `LPIPS(net)`:

    {'params':  {'backbone': {'features_<i>': {'kernel', 'bias'}}, 'lin<K>': {'kernel'}},
     'buffers': {'scaling': {'shift': [3], 'scale': [3]}}}

where <i> is the index of the conv in torchvision's `features` Sequential. Real weights come from
a local npz (`load_lpips_params`), made once by `python -m convert_weights.lpips` on a machine with
torch and internet; `LPIPS(net).init` only gives random weights of the right shapes.

Typical use in a loss (weights are a jit argument, not a closed-over constant):

    lpips_fn = make_lpips("lpips_vgg.npz", "vgg")      # an LPIPSFn pytree
    loss = jax.jit(lambda fn, a, b: fn(a, b).mean())(lpips_fn, a, b)
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Union

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

PrecisionLike = Any


class _Conv(NamedTuple):
    """Conv + ReLU; `index` is the conv's position in torchvision's `features` Sequential."""

    index: int
    features: int
    kernel: int
    stride: int = 1
    padding: int = 1


class _MaxPool(NamedTuple):
    """torch MaxPool2d without padding, floor mode."""

    window: int
    stride: int


BACKBONE_SLICES: dict[str, tuple[tuple[Union[_Conv, _MaxPool], ...], ...]] = {
    "alex": (
        (_Conv(0, 64, 11, stride=4, padding=2),),
        (_MaxPool(3, 2), _Conv(3, 192, 5, padding=2)),
        (_MaxPool(3, 2), _Conv(6, 384, 3)),
        (_Conv(8, 256, 3),),
        (_Conv(10, 256, 3),),
    ),
    "vgg": (
        (_Conv(0, 64, 3), _Conv(2, 64, 3)),
        (_MaxPool(2, 2), _Conv(5, 128, 3), _Conv(7, 128, 3)),
        (_MaxPool(2, 2), _Conv(10, 256, 3), _Conv(12, 256, 3), _Conv(14, 256, 3)),
        (_MaxPool(2, 2), _Conv(17, 512, 3), _Conv(19, 512, 3), _Conv(21, 512, 3)),
        (_MaxPool(2, 2), _Conv(24, 512, 3), _Conv(26, 512, 3), _Conv(28, 512, 3)),
    ),
}
NETS = tuple(BACKBONE_SLICES)

# lpips.pretrained_networks ScalingLayer constants (ImageNet mean/std mapped to [-1, 1] inputs).
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)
NORMALIZE_EPS = 1e-10

CONVERT_HINT = (
    "Make one on a machine with internet and torch: python -m convert_weights.lpips --net {net} "
    "--heads <site-packages>/lpips/weights/v0.1/{net}.pth "
    "--backbone <torchvision {arch} ImageNet weights .pth> --out {path}"
)


def _check_net(net: str) -> None:
    if net not in BACKBONE_SLICES:
        raise ValueError(f"LPIPS net must be one of {NETS}, got {net!r}")


def feature_sizes(net: str, size: int) -> tuple[int, ...]:
    """Side lengths of the five tapped feature maps for an input side length `size`."""
    _check_net(net)
    sizes = []
    for ops in BACKBONE_SLICES[net]:
        for op in ops:
            if isinstance(op, _MaxPool):
                size = (size - op.window) // op.stride + 1
            else:
                size = (size + 2 * op.padding - op.kernel) // op.stride + 1
        sizes.append(size)
    return tuple(sizes)


def min_input_size(net: str) -> int:
    """Smallest input side length for which every tapped feature map is non-empty."""
    size = 1
    while min(feature_sizes(net, size)) < 1:
        size += 1
    return size


def normalize_channels(f: jax.Array, eps: float = NORMALIZE_EPS) -> jax.Array:
    """f / (L2 norm over the last axis + eps), as `lpips.normalize_tensor` (eps outside the sqrt).

    The sqrt is guarded so an all-zero feature vector gets a zero (not NaN) gradient.
    """
    sq = jnp.sum(jnp.square(f), axis=-1, keepdims=True)
    positive = sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    return f / (norm + eps)


def feature_difference(a: jax.Array, b: jax.Array) -> jax.Array:
    """a - b, but exactly 0 (value and gradient) wherever a == b.

    Mathematically just a - b. Under jit, XLA rewrites the normalising division into a
    multiplication and LLVM may contract `a * r0 - b * r1` into an FMA, which leaves a rounding
    residue (~1e-8) for identical inputs; the select keeps LPIPS(x, x) == 0 exactly, as in lpips.
    """
    return jnp.where(a == b, jnp.zeros_like(a), a - b)


def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, ...]:
    """Indices and weights of torch's 1-D linear interpolation with align_corners=False.

    Computed in float32 like torch's CPU kernel: src = max(in/out * (dst + 0.5) - 0.5, 0).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, np.float32(1.0) - w1, w1


def resize_bilinear(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """Bilinear resize of NHWC `x` to `out_hw`, torch `interpolate(..., align_corners=False)`."""
    _, h, w, _ = x.shape
    j0, j1, u0, u1 = _linear_taps(w, out_hw[1])
    x = jnp.take(x, j0, axis=2) * u0[:, None] + jnp.take(x, j1, axis=2) * u1[:, None]
    i0, i1, v0, v1 = _linear_taps(h, out_hw[0])
    return jnp.take(x, i0, axis=1) * v0[:, None, None] + jnp.take(x, i1, axis=1) * v1[:, None, None]


class ScalingLayer(nn.Module):
    """x -> (x - shift) / scale per RGB channel; constants live in the `buffers` collection."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shift = self.variable("buffers", "shift", lambda: jnp.asarray(SCALING_SHIFT, jnp.float32))
        scale = self.variable("buffers", "scale", lambda: jnp.asarray(SCALING_SCALE, jnp.float32))
        return (x - shift.value) / scale.value


class Backbone(nn.Module):
    """torchvision AlexNet / VGG16 `features`, NHWC in, the five tapped ReLU outputs (NHWC) out."""

    net: str
    precision: PrecisionLike = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        _check_net(self.net)
        taps = []
        for ops in BACKBONE_SLICES[self.net]:
            for op in ops:
                if isinstance(op, _MaxPool):
                    x = nn.max_pool(
                        x, (op.window, op.window), strides=(op.stride, op.stride), padding="VALID"
                    )
                else:
                    x = nn.Conv(
                        op.features,
                        (op.kernel, op.kernel),
                        strides=(op.stride, op.stride),
                        padding=((op.padding, op.padding), (op.padding, op.padding)),
                        precision=self.precision,
                        name=f"features_{op.index}",
                    )(x)
                    x = nn.relu(x)
            taps.append(x)
        return taps


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between NHWC images in [-1, 1].

    Attributes:
      net: 'alex' or 'vgg'.
      precision: matmul/conv precision; HIGHEST keeps GPUs/TPUs from using TF32/bf16 passes.
    """

    net: str
    precision: PrecisionLike = jax.lax.Precision.HIGHEST

    def setup(self):
        _check_net(self.net)
        self.scaling = ScalingLayer()
        self.backbone = Backbone(self.net, self.precision)
        for k in range(len(BACKBONE_SLICES[self.net])):
            setattr(self, f"lin{k}", nn.Dense(1, use_bias=False, precision=self.precision))

    def features(self, x: jax.Array) -> list[jax.Array]:
        """The five raw backbone ReLU outputs f_K (NHWC, before normalisation) for images x."""
        return self.backbone(self.scaling(x))

    def _check_inputs(self, x0: jax.Array, x1: jax.Array) -> None:
        if x0.shape != x1.shape:
            raise ValueError(f"LPIPS inputs differ in shape: x0 {x0.shape} vs x1 {x1.shape}")
        if x0.ndim != 4 or x0.shape[-1] != 3:
            raise ValueError(f"LPIPS expects NHWC RGB images [N, H, W, 3], got shape {x0.shape}")
        min_size = min_input_size(self.net)
        if min(x0.shape[1:3]) < min_size:
            raise ValueError(
                f"LPIPS-{self.net} needs H, W >= {min_size}, got {x0.shape[1]}x{x0.shape[2]}"
            )

    def __call__(
        self, x0: jax.Array, x1: jax.Array, spatial: bool = False, per_layer: bool = False
    ):
        """Distance between x0 and x1, both [N, H, W, 3] in [-1, 1].

        Returns [N] (spatial=False) or an [N, H, W] map (spatial=True); with per_layer=True a
        pair (total, [term_0, ..., term_4]) whose terms have the same shape and sum to total.
        """
        self._check_inputs(x0, x1)
        # Two backbone passes (not one on the concatenated batch, whose per-position results may
        # differ in the last bit), so identical inputs give exactly 0, as in lpips.
        terms = []
        for k, (f0, f1) in enumerate(zip(self.features(x0), self.features(x1))):
            diff = jnp.square(feature_difference(normalize_channels(f0), normalize_channels(f1)))
            head_map = getattr(self, f"lin{k}")(diff)  # [N, h, w, 1]
            if spatial:
                terms.append(resize_bilinear(head_map, x0.shape[1:3])[..., 0])
            else:
                terms.append(jnp.mean(head_map, axis=(1, 2, 3)))
        total = functools.reduce(jnp.add, terms)
        return (total, terms) if per_layer else total


# ---------------------------------------------------------------------------------------------
# Weights file (npz with lpips' torch state_dict names) -> flax variables.


def _npz_layout(net: str) -> list[tuple[str, tuple[str, ...]]]:
    """(npz key, variables path) for every tensor LPIPS-`net` needs."""
    layout = [
        ("scaling_layer.shift", ("buffers", "scaling", "shift")),
        ("scaling_layer.scale", ("buffers", "scaling", "scale")),
    ]
    for s, ops in enumerate(BACKBONE_SLICES[net], start=1):
        for op in ops:
            if isinstance(op, _Conv):
                module = ("params", "backbone", f"features_{op.index}")
                layout.append((f"net.slice{s}.{op.index}.weight", module + ("kernel",)))
                layout.append((f"net.slice{s}.{op.index}.bias", module + ("bias",)))
    for k in range(len(BACKBONE_SLICES[net])):
        layout.append((f"lin{k}.model.1.weight", ("params", f"lin{k}", "kernel")))
    return layout


def _torch_shape(flax_path: tuple[str, ...], flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Torch layout of a flax leaf: HWIO -> OIHW; head [C, 1] and buffers [3] -> [1, C, 1, 1]."""
    if flax_path[0] == "buffers":
        return (1, flax_shape[0], 1, 1)
    if flax_path[-1] == "bias":
        return flax_shape
    if len(flax_shape) == 4:
        kh, kw, cin, cout = flax_shape
        return (cout, cin, kh, kw)
    return (1, flax_shape[0], 1, 1)


def _to_flax(array: np.ndarray, flax_shape: tuple[int, ...]) -> np.ndarray:
    """Convert one torch-layout tensor to the flax layout, as float32."""
    array = np.asarray(array, np.float32)
    if len(flax_shape) == 4:
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    return array.reshape(flax_shape)


@functools.cache
def _variable_shapes(net: str) -> dict:
    """Nested dict of the ShapeDtypeStructs of LPIPS(net)'s variables (no computation)."""
    size = min_input_size(net)
    dummy = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return dict(jax.eval_shape(LPIPS(net).init, jax.random.key(0), dummy, dummy))


def _get(tree: Mapping, path: tuple[str, ...]):
    for name in path:
        tree = tree[name]
    return tree


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def check_lpips_variables(variables: Mapping, net: str) -> None:
    """Raise ValueError unless `variables` has exactly LPIPS(net)'s tree structure and shapes."""
    _check_net(net)
    expected = _variable_shapes(net)
    want = {
        jax.tree_util.keystr(p): tuple(s.shape)
        for p, s in jax.tree_util.tree_leaves_with_path(expected)
    }
    try:
        got = {
            jax.tree_util.keystr(p): tuple(np.shape(a))
            for p, a in jax.tree_util.tree_leaves_with_path(dict(variables))
        }
    except TypeError as e:
        raise ValueError(f"LPIPS-{net} variables must be a dict pytree: {e}") from e
    problems = [f"missing {k} {s}" for k, s in want.items() if k not in got]
    problems += [f"unexpected {k} {s}" for k, s in got.items() if k not in want]
    problems += [
        f"{k} has shape {got[k]}, expected {s}" for k, s in want.items() if k in got and got[k] != s
    ]
    if problems:
        raise ValueError(f"variables do not fit LPIPS-{net}: " + "; ".join(problems))


def detect_lpips_net(arrays: Mapping[str, np.ndarray], source: str = "weights") -> str:
    """'alex' or 'vgg', from the first conv's kernel size, cross-checked with `meta_json`."""
    first = arrays.get("net.slice1.0.weight")
    by_shape = None
    if first is not None and np.ndim(first) == 4:
        by_shape = {11: "alex", 3: "vgg"}.get(np.shape(first)[-1])
    by_meta = None
    if "meta_json" in arrays:
        try:
            meta = json.loads(str(np.asarray(arrays["meta_json"])))
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: its meta_json is not valid JSON ({e})") from None
        by_meta = meta.get("net") if isinstance(meta, dict) else None
    if by_shape is None and by_meta is None:
        raise ValueError(
            f"{source}: not an LPIPS alex/vgg weights file (no 'net.slice1.0.weight' with an "
            f"11x11 or 3x3 kernel, no 'net' in meta_json); keys: {sorted(arrays)[:8]}..."
        )
    if by_shape and by_meta and by_shape != by_meta:
        raise ValueError(
            f"{source}: meta_json says net={by_meta!r} but the first conv looks like {by_shape!r}"
        )
    return by_shape or by_meta


def missing_weights_message(path, net: Optional[str]) -> str:
    """Why an LPIPS weights file is needed and how to make one (no weights ship with the project)."""
    arch = {"alex": "alexnet", "vgg": "vgg16"}.get(net, "alexnet/vgg16")
    return CONVERT_HINT.format(net=net or "alex|vgg", arch=arch, path=path or f"lpips_{net or 'alex'}.npz")


def check_weights_file(path, net: str, knob: str) -> None:
    """Raises ConfigError (naming the config knob) unless `path` is a file; its contents are checked on load."""
    from hfagp_common.cli import ConfigError

    if not path or not Path(path).is_file():
        raise ConfigError(f"{knob}={str(path or '')!r} is not a file, and LPIPS needs weights. "
                          + missing_weights_message(path, net) + " (or set the LPIPS weight to 0 to use L2 only)")


def load_lpips_params(path: Union[str, os.PathLike], net: str | None = None) -> dict:
    """Read an LPIPS weights npz (fixture / `convert_weights.lpips` format) into flax variables.

    The npz holds lpips' torch state_dict names (`net.slice<S>.<i>.weight|bias` OIHW, any float
    dtype; `lin<K>.model.1.weight` [1, C, 1, 1]; `scaling_layer.shift|scale` [1, 3, 1, 1]) and an
    optional `meta_json`. Every tensor must be used exactly once and every variable filled.

    Args:
      path: the .npz file.
      net: 'alex' or 'vgg' to insist on; None accepts whichever net the file is for.
    Returns:
      {'params': ..., 'buffers': ...} of float32 numpy arrays, for `LPIPS(net).apply`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights file {path} not found. " + missing_weights_message(path, net))
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        raise ValueError(f"{path} is not a readable LPIPS weights npz ({type(e).__name__}: {e}); make it again "
                         f"with python -m convert_weights.lpips") from None
    detected = detect_lpips_net(arrays, str(path))
    if net is not None:
        _check_net(net)
        if net != detected:
            raise ValueError(
                f"{path} holds LPIPS-{detected} weights, but net={net!r} was requested"
            )
    net = detected

    shapes = _variable_shapes(net)
    variables: dict = {}
    missing, bad_shape = [], []
    for key, flax_path in _npz_layout(net):
        flax_shape = tuple(_get(shapes, flax_path).shape)
        if key not in arrays:
            missing.append(key)
            continue
        array = arrays.pop(key)
        want = _torch_shape(flax_path, flax_shape)
        if array.shape != want:
            bad_shape.append(f"{key} {array.shape} (expected {want})")
            continue
        _set(variables, flax_path, _to_flax(array, flax_shape))
    arrays.pop("meta_json", None)
    if missing or bad_shape or arrays:
        raise ValueError(
            f"{path} does not match LPIPS-{net}: missing keys {missing}, wrong shapes {bad_shape}, "
            f"unused keys {sorted(arrays)}"
        )
    check_lpips_variables(variables, net)
    return variables


@flax.struct.dataclass
class LPIPSFn:
    """LPIPS-`net` with its variables bound: `fn(x0, x1) -> [N]` for NHWC images in [-1, 1].

    A pytree whose leaves are the weights, so pass it to jitted functions as an argument (the
    weights are then traced inputs, not constants folded into the compiled program).
    """

    variables: Any
    net: str = flax.struct.field(pytree_node=False)
    precision: PrecisionLike = flax.struct.field(
        pytree_node=False, default=jax.lax.Precision.HIGHEST
    )

    def __call__(
        self, x0: jax.Array, x1: jax.Array, spatial: bool = False, per_layer: bool = False
    ):
        """Same arguments and results as `LPIPS.__call__`."""
        return LPIPS(self.net, self.precision).apply(
            self.variables, x0, x1, spatial=spatial, per_layer=per_layer
        )


def make_lpips(
    weights: Union[str, os.PathLike, Mapping],
    net: str,
    precision: PrecisionLike = jax.lax.Precision.HIGHEST,
) -> LPIPSFn:
    """LPIPSFn from a weights npz path, or from loaded variables (checked to fit LPIPS-`net`)."""
    _check_net(net)
    if isinstance(weights, (str, os.PathLike)):
        variables = load_lpips_params(weights, net)
    else:
        variables = dict(weights)
        check_lpips_variables(variables, net)
    return LPIPSFn(variables=jax.tree.map(jnp.asarray, variables), net=net, precision=precision)
