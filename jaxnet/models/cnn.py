"""The assignment's CNN for 28x28x1 images (Fashion-MNIST), as a Flax Linen module.

Layers (NHWC; shapes per image)::

    input                               28 x 28 x 1
    conv1   1 -> 64, k3, s2, pad 1      14 x 14 x 64   -> LeakyReLU(0.01)
    avgpool 2x2, s2                      7 x  7 x 64
    conv2  64 -> 64, k3, s1, pad 1       7 x  7 x 64   -> LeakyReLU(0.01)
    conv3  64 -> 16, k3, s2, pad 1       4 x  4 x 16   -> LeakyReLU(0.01)
    flatten (h, w, c order)                    256
    fc    256 -> 10                             10

Parameters: 640 + 36,928 + 9,232 + 2,570 = 49,370. The padding is written out as ``((1, 1), (1, 1))``: for
the stride-2 convolutions 'SAME' pads (0, 1) instead, which shifts every output by one pixel.

Why Linen and not NNX: a Linen module is stateless, and its parameters are a plain nested dict of arrays,
like the hand-written two-layer net's ``{W1, b1, W2, b2}``. So the one jitted training step, optax and the
checkpoint code handle both models as pytrees, with no split/merge of module state.

conv1 sees a single input channel. XLA:CPU runs such a convolution at about 25 GFLOP/s (a matrix product
with an inner dimension of 9), so conv1's forward pass is written as the sum of its 9 taps: each a strided
slice of the padded image times that tap's 64 weights, one fused elementwise loop. Its gradient is XLA's
own convolution gradient (:func:`conv_by_taps`): the same numbers as ``lax.conv_general_dilated``, and
the whole training step 5-15% faster on CPU.

Initialization is PyTorch's default for ``nn.Conv2d``/``nn.Linear`` (kaiming-uniform with a = sqrt(5)):
weights and biases uniform in +-1/sqrt(fan_in), fan_in = k*k*C_in for a convolution, D_in for the linear
layer. It is what the original PyTorch network trained from, so the results and the PyTorch benchmark
compare like with like; Flax's lecun_normal (biases 0) trains this network about as well.

:func:`from_torch_state_dict` converts the original network's weights; :func:`torch_reference` builds that
network in PyTorch (for comparisons; it needs torch).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxnet.layers import check_labels
from jaxnet.models import Classifier

Array = jax.Array

FASHION_MNIST_MEAN = 0.2860
"""Mean of the Fashion-MNIST training pixels after scaling to [0, 1]."""
FASHION_MNIST_STD = 0.3530
"""Standard deviation of the Fashion-MNIST training pixels after scaling to [0, 1]."""

IMAGE_SHAPE = (28, 28, 1)
"""(H, W, C) of one input image."""
NEGATIVE_SLOPE = 0.01
"""LeakyReLU's slope for negative inputs (PyTorch's default)."""
PADDING = ((1, 1), (1, 1))
"""Zero padding of every convolution: one pixel on each side of H and W."""

NAME = "cnn"
STAGES = ("conv1_out", "pool_out", "conv2_out", "conv3_out", "flatten", "logits")
"""Names under which :class:`CNN` sows each stage's output, in order."""


def torch_default_kernel_init() -> jax.nn.initializers.Initializer:
    """PyTorch's default weight init for conv and linear layers: uniform in +-1/sqrt(fan_in).

    ``kaiming_uniform_(a=sqrt(5))`` has bound ``sqrt(6 / ((1 + a^2) fan_in)) = 1/sqrt(fan_in)``, which is
    ``variance_scaling(1/3, 'fan_in', 'uniform')`` (bound ``sqrt(3 * scale / fan_in)``). Flax kernels are
    (kh, kw, C_in, C_out) or (D_in, D_out), so fan_in = kh*kw*C_in or D_in.
    """
    return jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int) -> jax.nn.initializers.Initializer:
    """PyTorch's default bias init: uniform in +-1/sqrt(fan_in) of the layer's weights."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def leaky_relu(x: Array) -> Array:
    """LeakyReLU with slope :data:`NEGATIVE_SLOPE` for x < 0."""
    return jnp.where(x >= 0, x, NEGATIVE_SLOPE * x)


_NHWC = ("NHWC", "HWIO", "NHWC")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_taps(x: Array, kernel: Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...],
               precision: Any) -> Array:
    n, _, _, c_in = x.shape
    kh, kw = kernel.shape[:2]
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    h_out = (xp.shape[1] - kh) // strides[0] + 1
    w_out = (xp.shape[2] - kw) // strides[1] + 1
    y = None
    for i in range(kh):
        for j in range(kw):
            end = (n, i + strides[0] * (h_out - 1) + 1, j + strides[1] * (w_out - 1) + 1, c_in)
            tap = lax.slice(xp, (0, i, j, 0), end, (1, *strides, 1))  # (N, H_out, W_out, C_in)
            if c_in == 1:
                term = tap * kernel[i, j, 0]  # broadcast over C_out: no matrix product
            else:
                term = jnp.einsum("nhwc,cd->nhwd", tap, kernel[i, j], precision=precision)
            y = term if y is None else y + term
    return y


def _conv_taps_fwd(x, kernel, strides, padding, precision):
    return _conv_taps(x, kernel, strides, padding, precision), (x, kernel)


def _conv_taps_bwd(strides, padding, precision, residuals, grad_y):
    x, kernel = residuals
    _, vjp = jax.vjp(lambda x, k: lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=_NHWC,
                                                           precision=precision), x, kernel)
    return vjp(grad_y)


_conv_taps.defvjp(_conv_taps_fwd, _conv_taps_bwd)


def conv_by_taps(lhs: Array, rhs: Array, window_strides: Sequence[int], padding: Sequence[tuple[int, int]],
                 lhs_dilation: Sequence[int] | None = None, rhs_dilation: Sequence[int] | None = None,
                 dimension_numbers: Any = None, feature_group_count: int = 1, precision: Any = None) -> Array:
    """``lax.conv_general_dilated`` for NHWC images and HWIO kernels, computed as a sum over the kernel's taps.

    A drop-in for ``nn.Conv(conv_general_dilated=...)``: lhs (N, H, W, C_in), rhs (kh, kw, C_in, C_out),
    explicit padding ``((top, bottom), (left, right))`` -> (N, H_out, W_out, C_out). The forward pass adds
    kh*kw strided slices of the padded input, each times its tap's (C_in, C_out) weights; for C_in = 1 that
    is one elementwise loop, several times faster on XLA:CPU than its convolution. The gradient is
    ``lax.conv_general_dilated``'s (autodiff of the tap sum would reduce over the batch once per tap).
    """
    if isinstance(padding, str) or any(d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ()))):
        raise NotImplementedError("conv_by_taps takes explicit padding pairs and no dilation")
    if feature_group_count != 1:
        raise NotImplementedError("conv_by_taps takes feature_group_count=1")
    if dimension_numbers is not None and lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC) != \
            lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers):
        raise NotImplementedError("conv_by_taps takes NHWC inputs and HWIO kernels")
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv_taps(lhs, rhs, tuple(int(s) for s in window_strides), padding, precision)


class CNN(nn.Module):
    """The assignment's network (see the module docstring).

    ``__call__(x)``: x float (N, 28, 28, 1), already normalized -> scores (N, num_classes).

    Each stage's output is sown into the ``'intermediates'`` collection as conv1_out, pool_out, conv2_out,
    conv3_out (after their LeakyReLU), flatten and logits; ask for it with ``mutable=['intermediates']``. Otherwise
    the sows cost nothing.
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"the CNN takes images of shape (N, 28, 28, 1) (NHWC), got {tuple(x.shape)}; "
                f"add the channel axis with x[..., None] or resize the images to 28x28"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"the CNN takes float inputs, got {x.dtype}; turn uint8 images into inputs with the "
                f"classifier's preprocess (scale to [0, 1] and normalize)"
            )

        def conv(features: int, stride: int, name: str, c_in: int) -> nn.Conv:
            fan_in = 3 * 3 * c_in
            return nn.Conv(
                features,
                kernel_size=(3, 3),
                strides=(stride, stride),
                padding=PADDING,
                kernel_init=torch_default_kernel_init(),
                bias_init=torch_default_bias_init(fan_in),
                conv_general_dilated=conv_by_taps if c_in == 1 else None,  # see the module docstring
                name=name,
            )

        x = leaky_relu(conv(64, 2, "conv1", IMAGE_SHAPE[2])(x))
        self.sow("intermediates", "conv1_out", x)
        x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        self.sow("intermediates", "pool_out", x)
        x = leaky_relu(conv(64, 1, "conv2", 64)(x))
        self.sow("intermediates", "conv2_out", x)
        x = leaky_relu(conv(16, 2, "conv3", 64)(x))
        self.sow("intermediates", "conv3_out", x)
        x = x.reshape(x.shape[0], -1)  # NHWC order: index (h * 4 + w) * 16 + c
        self.sow("intermediates", "flatten", x)
        x = nn.Dense(
            self.num_classes,
            kernel_init=torch_default_kernel_init(),
            bias_init=torch_default_bias_init(x.shape[-1]),
            name="fc",
        )(x)
        self.sow("intermediates", "logits", x)
        return x


def preprocess(images: Any) -> Array:
    """uint8 images (N, 28, 28, 1) -> float32 inputs ``(images / 255 - MEAN) / STD``.

    Shapes and dtype are checked when traced, so a wrong one raises also under ``jit``.
    """
    images = jnp.asarray(images)
    if images.dtype != jnp.uint8:
        raise TypeError(
            f"images must be uint8 pixels 0-255, got {images.dtype}; "
            f"the data loaders and jaxnet.images.load_grayscale_28 give uint8"
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"images must have shape (N, 28, 28, 1), got {tuple(images.shape)}; "
            f"add the channel axis with images[..., None]"
        )
    x = images.astype(jnp.float32) / 255.0
    return (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD


def cnn_classifier(num_classes: int = 10) -> Classifier:
    """The CNN as a :class:`~jaxnet.models.Classifier` for the training loop.

    - ``init(key)``: params ``{'conv1': {'kernel', 'bias'}, 'conv2': ..., 'conv3': ..., 'fc': ...}``, from a
      (1, 28, 28, 1) dummy input. Kernels are HWIO (3, 3, C_in, C_out) and (256, num_classes).
    - ``apply(params, x)``: x float (N, 28, 28, 1), preprocessed -> scores (N, num_classes).
    - ``loss_and_grads(params, x, y)``: mean softmax cross-entropy over the batch and its gradient from
      ``jax.value_and_grad``. y: int (N,) in [0, num_classes); checked when concrete, and under ``jit`` a
      label out of range makes the loss and the gradients NaN (as in :mod:`jaxnet.layers`).
    - ``preprocess``: :func:`preprocess`.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    module = CNN(num_classes=num_classes)

    def init(key: Array) -> Any:
        return module.init(key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))["params"]

    def apply(params: Any, x: Array) -> Array:
        return module.apply({"params": params}, x)

    def loss(params: Any, x: Array, y: Array) -> Array:
        scores = apply(params, x)
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}; use y.astype(jnp.int32)")
        if y.shape != scores.shape[:1]:
            n = scores.shape[0]
            raise ValueError(f"x has {n} images but y has shape {y.shape}; y must be ({n},)")
        check_labels(y, num_classes)
        # optax takes the label index modulo-style for negative labels under jit; make any bad label NaN instead.
        valid = (y >= 0) & (y < num_classes)
        nan_if_bad = jnp.where(valid, 1.0, jnp.nan).astype(scores.dtype)
        per_example = optax.softmax_cross_entropy_with_integer_labels(scores, jnp.where(valid, y, 0))
        return jnp.mean(per_example * nan_if_bad)

    def loss_and_grads(params: Any, x: Array, y: Array) -> tuple[Array, Any]:
        return jax.value_and_grad(loss)(params, x, jnp.asarray(y))

    config = {
        "num_classes": num_classes,
        "input_shape": list(IMAGE_SHAPE),
        "normalize_mean": FASHION_MNIST_MEAN,
        "normalize_std": FASHION_MNIST_STD,
        "negative_slope": NEGATIVE_SLOPE,
        "init": "pytorch-default",
    }
    return Classifier(
        name=NAME, init=init, apply=apply, loss_and_grads=loss_and_grads, preprocess=preprocess, config=config
    )


def intermediate_shapes(params: Any) -> dict[str, tuple[int, ...]]:
    """Per-image output shape of each stage, in order, without computing anything.

    Keys: conv1_out (14, 14, 64), pool_out (7, 7, 64), conv2_out (7, 7, 64), conv3_out (4, 4, 16),
    flatten (256,), logits (num_classes,).
    """

    def run(p: Any) -> Any:
        x = jnp.zeros((1, *IMAGE_SHAPE), jnp.float32)
        module = CNN(num_classes=p["fc"]["kernel"].shape[1])
        return module.apply({"params": p}, x, mutable=["intermediates"])[1]["intermediates"]

    sown = jax.eval_shape(run, params)
    return {name: tuple(sown[name][0].shape[1:]) for name in STAGES}


def flops_per_image(num_classes: int = 10) -> dict[str, int]:
    """Floating-point operations per image, counted from the layer shapes (a multiply-add is 2).

    Returns ``{'forward': ..., 'training': ...}``. Training is the forward pass, each layer's weight
    gradient (as many FLOPs as its forward) and each layer's input gradient except conv1's (the images get
    no gradient): 12.19 MFLOP for 10 classes (forward 4.14). Activations, pooling and the loss are ignored.
    """
    params = jax.eval_shape(cnn_classifier(num_classes).init, jax.random.key(0))
    shapes = intermediate_shapes(params)
    forward = {}
    for name in ("conv1", "conv2", "conv3"):
        kh, kw, c_in, c_out = params[name]["kernel"].shape
        h, w, _ = shapes[f"{name}_out"]
        forward[name] = 2 * h * w * c_out * kh * kw * c_in
    d_in, d_out = params["fc"]["kernel"].shape
    forward["fc"] = 2 * d_in * d_out
    total = sum(forward.values())
    return {"forward": total, "training": 3 * total - forward["conv1"]}


# --------------------------------------------------------------------------------------------------
# Weights of the original PyTorch network
# --------------------------------------------------------------------------------------------------

TORCH_SHAPES: dict[str, tuple[int, ...]] = {
    "conv1.weight": (64, 1, 3, 3),
    "conv1.bias": (64,),
    "conv2.weight": (64, 64, 3, 3),
    "conv2.bias": (64,),
    "conv3.weight": (16, 64, 3, 3),
    "conv3.bias": (16,),
    "fc.weight": (10, 256),
    "fc.bias": (10,),
}
"""The original network's state_dict: ``nn.Conv2d`` weights OIHW, ``nn.Linear`` weight (out, in)."""


def torch_reference(num_classes: int = 10):
    """The assignment's original network in PyTorch, the reference for comparisons (imports torch).

    An ``nn.Module`` with ``conv1``, ``conv2``, ``conv3`` (``nn.Conv2d``) and ``fc`` (``nn.Linear``), as the
    assignment writes it: it takes normalized NCHW images (N, 1, 28, 28) (:func:`preprocess`, transposed) and
    returns scores (N, num_classes); its ``state_dict()`` has the keys of :data:`TORCH_SHAPES`, which
    :func:`from_torch_state_dict` converts. Initialized by PyTorch's defaults: call ``torch.manual_seed``
    first for given weights. The CNN benchmark (:mod:`jaxnet.bench.cnn`) trains it against jaxnet and the
    tests compare logits with it. Needs torch (``pip install -e '.[bench]'``); raises ``ImportError`` without.
    """
    import torch

    nn, F = torch.nn, torch.nn.functional

    class ReferenceCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 64, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(64, 64, 3, stride=1, padding=1)
            self.conv3 = nn.Conv2d(64, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(256, num_classes)

        def forward(self, x):
            x = F.avg_pool2d(F.leaky_relu(self.conv1(x), NEGATIVE_SLOPE), 2, 2)
            x = F.leaky_relu(self.conv2(x), NEGATIVE_SLOPE)
            x = F.leaky_relu(self.conv3(x), NEGATIVE_SLOPE)
            return self.fc(x.flatten(1))  # NCHW flatten: index c*16 + h*4 + w

    return ReferenceCNN()


def from_torch_state_dict(state_dict: Mapping[str, Any]) -> dict[str, dict[str, Array]]:
    """Converts the original PyTorch network's weights to this module's params.

    The PyTorch network is ``conv1``, ``conv2``, ``conv3`` (``nn.Conv2d``) and ``fc`` (``nn.Linear(256, 10)``)
    attributes, so its ``state_dict()`` has exactly the keys of :data:`TORCH_SHAPES`, with no prefix (strip
    e.g. ``module.`` first). Values are NumPy arrays (or CPU tensors, anything ``np.asarray`` takes).

    - conv weights OIHW (C_out, C_in, kh, kw) -> Flax HWIO (kh, kw, C_in, C_out);
    - ``fc.weight`` (10, 256) -> kernel (256, 10) with its rows permuted: PyTorch flattens NCHW, input index
      ``c*16 + h*4 + w``; this module flattens NHWC, index ``(h*4 + w)*16 + c``.

    Returns float32 params, ready for ``cnn_classifier().apply``.
    Raises ``ValueError`` naming missing or unexpected keys, or a key whose shape is wrong; ``TypeError``
    naming a key whose array is not floating point.
    """
    keys = set(state_dict)
    missing = [k for k in TORCH_SHAPES if k not in keys]
    extra = sorted(k for k in keys if k not in TORCH_SHAPES)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            shown = ", ".join(extra[:8]) + (f" and {len(extra) - 8} more" if len(extra) > 8 else "")
            parts.append(f"unexpected {shown}")
        hint = "; expected exactly " + ", ".join(TORCH_SHAPES)
        prefixes = {k.split(".", 1)[0] + "." for k in extra if "." in k}
        unprefixed = {k.split(".", 1)[1] for k in extra if "." in k}
        if missing and len(prefixes) == 1 and set(missing) <= unprefixed:
            hint += f" (strip the prefix {prefixes.pop()!r} from the keys first)"
        raise ValueError(f"state_dict does not match the CNN: {'; '.join(parts)}{hint}")

    arrays = {}
    for key, expected in TORCH_SHAPES.items():
        array = np.asarray(state_dict[key])
        if array.dtype.kind != "f":
            raise TypeError(f"state_dict[{key!r}] must be a float array, got dtype {array.dtype}")
        if array.shape != expected:
            raise ValueError(f"state_dict[{key!r}] has shape {array.shape}, expected {expected}")
        arrays[key] = array.astype(np.float32)

    params: dict[str, dict[str, Array]] = {}
    for name in ("conv1", "conv2", "conv3"):
        params[name] = {
            "kernel": jnp.asarray(arrays[f"{name}.weight"].transpose(2, 3, 1, 0)),  # OIHW -> HWIO
            "bias": jnp.asarray(arrays[f"{name}.bias"]),
        }
    c, h, w = 16, 4, 4
    fc = arrays["fc.weight"].reshape(-1, c, h, w)  # (out, c, h, w): PyTorch's input order
    params["fc"] = {
        "kernel": jnp.asarray(fc.transpose(2, 3, 1, 0).reshape(h * w * c, -1)),  # rows in (h, w, c) order
        "bias": jnp.asarray(arrays["fc.bias"]),
    }
    return params
