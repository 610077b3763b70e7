"""The cost of the model in floating-point operations (the ceiling is ``ceiling.py``'s).

FLOPs are counted from the built model's own layers (their configuration and
the shapes flowing through them), so a change to the model changes the count.
A multiply-add is two FLOPs. Training costs about three forward passes
(forward, gradient with respect to the inputs, gradient with respect to the
weights), less the input gradient of the first layer, which nothing needs.
"""
import time

import numpy as np


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


WEIGHTED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
"""Layers whose backward pass costs a product as large as their forward one for the input gradient."""
ELEMENTWISE = {"Activation": 1, "ReLU": 1, "LeakyReLU": 1, "ELU": 1, "PReLU": 1, "Softmax": 1, "Dropout": 1,
               "SpatialDropout2D": 1, "GaussianDropout": 1, "GaussianNoise": 1, "AlphaDropout": 1,
               "BatchNormalization": 4}
"""FLOPs per output number of layers that work element by element (batch normalisation in inference
form: subtract, divide, scale, shift)."""
FREE = ("InputLayer", "Flatten", "Reshape", "ZeroPadding2D", "Cropping2D", "Permute", "Concatenate")
"""Layers that only move numbers."""


def _hwc(shape, data_format):
    """A tensor shape without its batch axis, as (height, width, channels) for images."""
    shape = tuple(int(d) for d in shape[1:])
    if data_format == "channels_first" and len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    return shape


def _shapes(layer, kind):
    """(input shapes, output shape) of a layer in a built functional or Sequential model."""
    ins = getattr(layer, "input_shape", None)
    out = getattr(layer, "output_shape", None)
    if ins is None or out is None:  # Keras 3 keeps them on the symbolic tensors
        node_in = getattr(layer, "input", None)
        ins = [t.shape for t in node_in] if isinstance(node_in, (list, tuple)) else getattr(node_in, "shape", None)
        out = getattr(getattr(layer, "output", None), "shape", None)
    if isinstance(ins, tuple) and ins and not isinstance(ins[0], (tuple, list)):
        ins = [ins]
    return [tuple(s) for s in (ins or [])], (tuple(out) if out is not None else None)


def _number(shape):
    return int(np.prod(shape)) if shape else 0


def layer_costs(model, input_shape, data_format="channels_last"):
    """[(layer name, forward FLOPs per image, input-gradient FLOPs per image)] in model order.

    Each layer is costed from its own configuration and the shapes flowing
    into and out of it, so branching models (a residual merge) count right.
    Shapes are followed as (height, width, channels) whatever the layout, which
    changes where the numbers sit in memory, not how many there are. A layer
    of a kind not known here costs 0 and is named by ``uncounted``.
    """
    costs = []
    for layer in model.layers:
        kind = layer.__class__.__name__
        forward = _forward(layer, kind, data_format)
        costs.append((layer.name, int(forward or 0), int(forward or 0) if kind in WEIGHTED else 0))
    return costs


def uncounted(model):
    """The kinds of layer in ``model`` whose FLOPs ``layer_costs`` does not know (counted as 0)."""
    known = set(WEIGHTED) | set(ELEMENTWISE) | set(FREE) | {"MaxPooling2D", "AveragePooling2D",
                                                             "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                                                             "Add", "Subtract", "Multiply", "Average"}
    return sorted(set(layer.__class__.__name__ for layer in model.layers) - known)


def _forward(layer, kind, data_format):
    if kind in FREE:
        return 0
    ins, out = _shapes(layer, kind)
    if out is None:
        return 0
    out = _hwc(out, data_format)
    inp = _hwc(ins[0], data_format) if ins else out
    config = layer.get_config()
    bias = _number(out) if config.get("use_bias", False) else 0
    if kind in WEIGHTED and config.get("activation") not in (None, "linear"):
        bias += _number(out)  # an activation inside the layer: one FLOP per output, like an Activation layer
    if kind == "Conv2D":
        kh, kw = _pair(config["kernel_size"])
        return 2 * out[0] * out[1] * kh * kw * inp[-1] * out[-1] + bias
    if kind == "DepthwiseConv2D":
        kh, kw = _pair(config["kernel_size"])
        return 2 * _number(out) * kh * kw + bias
    if kind == "SeparableConv2D":
        kh, kw = _pair(config["kernel_size"])
        middle = inp[-1] * config.get("depth_multiplier", 1)
        return 2 * out[0] * out[1] * (kh * kw * middle + middle * out[-1]) + bias
    if kind == "Dense":
        return 2 * _number(out) * inp[-1] + bias
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        ph, pw = _pair(config["pool_size"])
        return _number(out) * ph * pw
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return _number(inp)
    if kind in ("Add", "Subtract", "Multiply", "Average"):
        return (len(ins) - 1) * _number(out)
    return ELEMENTWISE.get(kind, 0) * _number(out)


def per_image(model, input_shape, data_format="channels_last"):
    """{"forward": FLOPs to infer one image, "train": FLOPs to train on one image, "uncounted": kinds}."""
    costs = layer_costs(model, input_shape, data_format)
    forward = sum(c[1] for c in costs)
    weighted = [c for c in costs if c[2]]
    first_input_grad = weighted[0][2] if weighted else 0
    train = 3 * forward - first_input_grad
    return {"forward": int(forward), "train": int(train), "uncounted": uncounted(model)}


def utilisation(images_per_s, flops_per_image, ceiling_gflops):
    """Share of the measured matmul rate the model's FLOPs reach (None if unmeasured)."""
    if not images_per_s or not flops_per_image or not ceiling_gflops:
        return None
    return round(images_per_s * flops_per_image / (ceiling_gflops * 1e9), 4)
