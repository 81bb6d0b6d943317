"""The Flax CNN: shapes, parameter count, explicit padding, PyTorch weight conversion, preprocessing, loss."""

import jaxnet  # noqa: F401  (sets the XLA CPU flag before jax is imported)

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from jaxnet.models import Classifier
from jaxnet.models import cnn

DN = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(scope="module")
def classifier():
    return cnn.cnn_classifier()


@pytest.fixture(scope="module")
def params(classifier):
    return classifier.init(jax.random.key(0))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    return images, cnn.preprocess(images)


@pytest.fixture(scope="module")
def sown(params, batch):
    _, x = batch
    scores, state = cnn.CNN().apply({"params": params}, x, mutable=["intermediates"])
    return scores, {name: value[0] for name, value in state["intermediates"].items()}


# ----------------------------------------------------------------------------------------------
# Architecture
# ----------------------------------------------------------------------------------------------


def test_every_intermediate_shape(sown):
    scores, inter = sown
    expected = {
        "conv1_out": (3, 14, 14, 64),
        "pool_out": (3, 7, 7, 64),
        "conv2_out": (3, 7, 7, 64),
        "conv3_out": (3, 4, 4, 16),
        "flatten": (3, 256),
        "logits": (3, 10),
    }
    assert {name: inter[name].shape for name in cnn.STAGES} == expected
    assert scores.shape == (3, 10)
    np.testing.assert_array_equal(scores, inter["logits"])


def test_intermediate_shapes_helper(params):
    assert cnn.intermediate_shapes(params) == {
        "conv1_out": (14, 14, 64),
        "pool_out": (7, 7, 64),
        "conv2_out": (7, 7, 64),
        "conv3_out": (4, 4, 16),
        "flatten": (256,),
        "logits": (10,),
    }


def test_parameter_count(params):
    sizes = {name: sum(a.size for a in jax.tree.leaves(layer)) for name, layer in params.items()}
    assert sizes == {"conv1": 640, "conv2": 36_928, "conv3": 9_232, "fc": 2_570}
    assert sum(a.size for a in jax.tree.leaves(params)) == 49_370
    assert params["conv1"]["kernel"].shape == (3, 3, 1, 64)
    assert params["fc"]["kernel"].shape == (256, 10)


def test_flops_counted_from_the_layers():
    flops = cnn.flops_per_image()
    forward = 2 * (14 * 14 * 64 * 9 * 1 + 7 * 7 * 64 * 9 * 64 + 4 * 4 * 16 * 9 * 64 + 256 * 10)
    assert flops["forward"] == forward == 4_138_496
    assert flops["training"] == 3 * forward - 2 * 14 * 14 * 64 * 9


def test_init_is_pytorchs_default(params):
    # Weights and biases uniform in +-1/sqrt(fan_in): all inside the bound, the largest close to it.
    for name, fan_in in [("conv1", 9), ("conv2", 576), ("conv3", 576), ("fc", 256)]:
        bound = 1 / np.sqrt(fan_in)
        for leaf in ("kernel", "bias"):
            values = np.abs(np.asarray(params[name][leaf]))
            assert values.max() <= bound, (name, leaf)
            assert values.max() > 0.8 * bound, (name, leaf)


def _conv(x, kernel, bias, stride, padding):
    return lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=DN) + bias


@pytest.mark.parametrize(
    "name, source, stride",
    [("conv1", None, 2), ("conv2", "pool_out", 1), ("conv3", "conv2_out", 2)],
)
def test_each_conv_is_explicit_padding_one(params, batch, sown, name, source, stride):
    _, inter = sown
    x = batch[1] if source is None else inter[source]
    p = params[name]
    explicit = cnn.leaky_relu(_conv(x, p["kernel"], p["bias"], stride, ((1, 1), (1, 1))))
    np.testing.assert_allclose(inter[f"{name}_out"], explicit, rtol=1e-5, atol=1e-5)


def test_same_padding_would_differ_for_stride_two(params, batch, sown):
    _, inter = sown
    x = batch[1]
    p = params["conv1"]
    # On 28x28 with stride 2, 'SAME' pads (0, 1): a one-pixel shift, different outputs of the same shape.
    same = cnn.leaky_relu(_conv(x, p["kernel"], p["bias"], 2, "SAME"))
    assert same.shape == inter["conv1_out"].shape
    assert np.abs(np.asarray(same) - np.asarray(inter["conv1_out"])).max() > 1e-2
    assert lax.padtype_to_pads((28, 28), (3, 3), (2, 2), "SAME") == [(0, 1), (0, 1)]

    # conv3 sees 7x7 here, where 'SAME' happens to pad (1, 1) too; on an even input it would not.
    assert lax.padtype_to_pads((7, 7), (3, 3), (2, 2), "SAME") == [(1, 1), (1, 1)]
    p = params["conv3"]
    even = jax.random.normal(jax.random.key(1), (2, 8, 8, 64))
    explicit = _conv(even, p["kernel"], p["bias"], 2, ((1, 1), (1, 1)))
    same = _conv(even, p["kernel"], p["bias"], 2, "SAME")
    assert explicit.shape == same.shape == (2, 4, 4, 16)
    assert np.abs(np.asarray(same) - np.asarray(explicit)).max() > 1e-2


@pytest.mark.parametrize("c_in, c_out, stride, size", [(1, 64, 2, 28), (1, 8, 1, 9), (64, 16, 2, 7), (3, 5, 1, 6)])
def test_conv_by_taps_equals_xla_convolution_and_its_gradients(c_in, c_out, stride, size):
    key_x, key_k, key_g = jax.random.split(jax.random.key(c_in * 100 + c_out), 3)
    x = jax.random.normal(key_x, (3, size, size, c_in))
    kernel = jax.random.normal(key_k, (3, 3, c_in, c_out))
    padding = ((1, 1), (1, 1))
    args = ((stride, stride), padding)
    want, want_vjp = jax.vjp(lambda x, k: lax.conv_general_dilated(x, k, *args, dimension_numbers=DN), x, kernel)
    got, got_vjp = jax.vjp(lambda x, k: cnn.conv_by_taps(x, k, *args, dimension_numbers=DN), x, kernel)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    grad_y = jax.random.normal(key_g, want.shape)
    for got_grad, want_grad in zip(got_vjp(grad_y), want_vjp(grad_y)):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-4)


def test_conv_by_taps_refuses_what_it_does_not_compute():
    x, kernel = jnp.zeros((1, 8, 8, 1)), jnp.zeros((3, 3, 1, 4))
    with pytest.raises(NotImplementedError, match="explicit padding"):
        cnn.conv_by_taps(x, kernel, (1, 1), "SAME")
    with pytest.raises(NotImplementedError, match="no dilation"):
        cnn.conv_by_taps(x, kernel, (1, 1), ((1, 1), (1, 1)), rhs_dilation=(2, 2))
    with pytest.raises(NotImplementedError, match="NHWC"):
        cnn.conv_by_taps(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))


def test_module_rejects_wrong_input(params):
    module = cnn.CNN()
    with pytest.raises(ValueError, match=r"\(N, 28, 28, 1\).*got \(2, 28, 28\)"):
        module.apply({"params": params}, jnp.zeros((2, 28, 28)))
    with pytest.raises(TypeError, match="float inputs, got uint8"):
        module.apply({"params": params}, jnp.zeros((2, 28, 28, 1), jnp.uint8))


# ----------------------------------------------------------------------------------------------
# Weights from the PyTorch network
# ----------------------------------------------------------------------------------------------


def _torch_state_dict(seed=0):
    """Random weights in the PyTorch network's layout, scaled like its default init."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in cnn.TORCH_SHAPES.items():
        layer = key.split(".")[0]
        fan_in = int(np.prod(cnn.TORCH_SHAPES[f"{layer}.weight"][1:]))
        state[key] = rng.uniform(-1, 1, size=shape) / np.sqrt(fan_in)
    return state


def _numpy_torch_forward(state, images_nchw):
    """The network written the PyTorch way in float64: NCHW, OIHW weights, zero padding 1, NCHW flatten."""

    def conv2d(x, w, b, stride):
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        ho, wo = (h + 2 - kh) // stride + 1, (wd + 2 - kw) // stride + 1
        out = np.zeros((n, o, ho, wo))
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
        return out + b[None, :, None, None]

    def leaky(x):
        return np.where(x >= 0, x, 0.01 * x)

    x = leaky(conv2d(images_nchw, state["conv1.weight"], state["conv1.bias"], 2))
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    x = leaky(conv2d(x, state["conv2.weight"], state["conv2.bias"], 1))
    x = leaky(conv2d(x, state["conv3.weight"], state["conv3.bias"], 2))
    x = x.reshape(n, -1)  # NCHW flatten: index c*16 + h*4 + w
    return x @ state["fc.weight"].T + state["fc.bias"]


def test_converted_weights_give_pytorchs_logits(classifier, batch):
    state = _torch_state_dict()
    images, x = batch
    expected = _numpy_torch_forward(state, np.asarray(x, np.float64).transpose(0, 3, 1, 2))
    params = cnn.from_torch_state_dict(state)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, classifier.init(jax.random.key(0)))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    logits = classifier.apply(params, x)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)

    # The fc rows must be permuted: a plain transpose of fc.weight gives other logits.
    plain = {"kernel": jnp.asarray(state["fc.weight"].T, jnp.float32), "bias": params["fc"]["bias"]}
    unpermuted = dict(params, fc=plain)
    assert np.abs(np.asarray(classifier.apply(unpermuted, x)) - expected).max() > 1e-3


def test_converted_weights_match_real_pytorch(classifier, batch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = cnn.torch_reference()  # the original network, as the assignment writes it in PyTorch
    _, x = batch
    with torch.no_grad():
        expected = net(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())).numpy()
    params = cnn.from_torch_state_dict({k: v.numpy() for k, v in net.state_dict().items()})
    np.testing.assert_allclose(classifier.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_converter_permutation_index_by_index():
    state = {k: np.zeros(s, np.float32) for k, s in cnn.TORCH_SHAPES.items()}
    c, h, w, o = 5, 2, 3, 7
    state["fc.weight"][o, c * 16 + h * 4 + w] = 1.0
    kernel = np.asarray(cnn.from_torch_state_dict(state)["fc"]["kernel"])
    assert np.argwhere(kernel).tolist() == [[(h * 4 + w) * 16 + c, o]]
    state["conv2.weight"][1, 2, 0, 2] = 1.0  # (out, in, kh, kw) -> (kh, kw, in, out)
    kernel = np.asarray(cnn.from_torch_state_dict(state)["conv2"]["kernel"])
    assert np.argwhere(kernel).tolist() == [[0, 2, 2, 1]]


def test_converter_missing_and_extra_keys():
    state = _torch_state_dict()
    del state["conv2.bias"]
    state["bn.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"missing conv2\.bias; unexpected bn\.weight; expected exactly conv1\.weight"):
        cnn.from_torch_state_dict(state)


def test_converter_prefixed_keys_hint():
    state = {f"module.{k}": v for k, v in _torch_state_dict().items()}
    with pytest.raises(ValueError, match=r"strip the prefix 'module\.'"):
        cnn.from_torch_state_dict(state)


def test_converter_wrong_shape_names_key():
    state = _torch_state_dict()
    state["conv3.weight"] = np.zeros((16, 64, 5, 5))
    with pytest.raises(
        ValueError, match=r"state_dict\['conv3\.weight'\] has shape \(16, 64, 5, 5\), expected \(16, 64, 3, 3\)"
    ):
        cnn.from_torch_state_dict(state)


def test_converter_wrong_dtype():
    state = _torch_state_dict()
    state["fc.bias"] = np.zeros(10, np.int64)
    with pytest.raises(TypeError, match=r"state_dict\['fc\.bias'\] must be a float array, got dtype int64"):
        cnn.from_torch_state_dict(state)


# ----------------------------------------------------------------------------------------------
# The Classifier interface
# ----------------------------------------------------------------------------------------------


def test_preprocess_constants():
    assert cnn.FASHION_MNIST_MEAN == 0.2860
    assert cnn.FASHION_MNIST_STD == 0.3530
    images = np.array([0, 255, 73], np.uint8).reshape(3, 1, 1, 1) * np.ones((1, 28, 28, 1), np.uint8)
    x = cnn.preprocess(images)
    assert x.dtype == jnp.float32 and x.shape == (3, 28, 28, 1)
    expected = (np.array([0.0, 1.0, 73 / 255]) - 0.2860) / 0.3530
    np.testing.assert_allclose(np.asarray(x)[:, 0, 0, 0], expected, rtol=1e-6, atol=1e-6)


def test_preprocess_rejects_wrong_input():
    with pytest.raises(TypeError, match="must be uint8.*got float32"):
        cnn.preprocess(np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 28, 28, 1\), got \(1, 28, 28\).*images\[\.\.\., None\]"):
        cnn.preprocess(np.zeros((1, 28, 28), np.uint8))


def test_classifier_interface(classifier, params, batch):
    assert isinstance(classifier, Classifier)
    assert classifier.name == "cnn"
    assert classifier.preprocess is cnn.preprocess
    assert classifier.config["num_classes"] == 10
    assert classifier.config["normalize_mean"] == cnn.FASHION_MNIST_MEAN
    _, x = batch
    y = jnp.array([0, 9, 4])
    loss, grads = classifier.loss_and_grads(params, x, y)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    expected = -jnp.mean(jax.nn.log_softmax(classifier.apply(params, x))[jnp.arange(3), y])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    g = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(classifier.apply(p, x), y).mean())(params)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bad_labels(classifier, params, batch):
    _, x = batch
    with pytest.raises(ValueError, match=r"label y\[1\] = 10 is outside \[0, 10\)"):
        classifier.loss_and_grads(params, x, jnp.array([0, 10, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        classifier.loss_and_grads(params, x, jnp.array([0.0, 1.0, 1.0]))
    # Under jit a negative label cannot be checked: loss and gradients are NaN, never a finite answer.
    loss, grads = jax.jit(classifier.loss_and_grads)(params, x, jnp.array([0, -1, 1]))
    assert np.isnan(loss)
    assert all(np.isnan(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_num_classes_argument():
    small = cnn.cnn_classifier(3)
    params = small.init(jax.random.key(0))
    assert params["fc"]["kernel"].shape == (256, 3)
    assert small.apply(params, jnp.zeros((2, 28, 28, 1))).shape == (2, 3)
    with pytest.raises(ValueError, match="positive integer"):
        cnn.cnn_classifier(0)


def test_a_few_adam_steps_learn(classifier, params, batch):
    _, x = batch
    y = jnp.array([0, 1, 2])
    optimizer = optax.adam(1e-3)

    @jax.jit
    def step(p, opt_state):
        loss, grads = classifier.loss_and_grads(p, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    p, opt_state = params, optimizer.init(params)
    losses = []
    for _ in range(20):
        p, opt_state, loss = step(p, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
