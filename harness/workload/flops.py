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


def _conv_out(size, kernel, stride, padding):
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def layer_costs(model, input_shape, data_format="channels_last"):
    """[(layer name, forward FLOPs per image, input-gradient FLOPs per image)] in model order.

    Shapes are followed as (height, width, channels) whatever the layout, which
    changes where the numbers sit in memory, not how many there are.
    """
    shape = tuple(input_shape)
    if data_format == "channels_first" and len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    costs = []
    for layer in model.layers:
        kind = layer.__class__.__name__
        config = layer.get_config()
        forward = 0
        if kind == "Conv2D":
            kh, kw = _pair(config["kernel_size"])
            sh, sw = _pair(config.get("strides", 1))
            h, w, c = shape
            out_h = _conv_out(h, kh, sh, config.get("padding", "valid"))
            out_w = _conv_out(w, kw, sw, config.get("padding", "valid"))
            filters = config["filters"]
            forward = 2 * out_h * out_w * kh * kw * c * filters
            if config.get("use_bias", True):
                forward += out_h * out_w * filters
            shape = (out_h, out_w, filters)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            ph, pw = _pair(config["pool_size"])
            strides = config.get("strides") or (ph, pw)
            sh, sw = _pair(strides)
            h, w, c = shape
            out_h = _conv_out(h, ph, sh, config.get("padding", "valid"))
            out_w = _conv_out(w, pw, sw, config.get("padding", "valid"))
            forward = out_h * out_w * c * ph * pw
            shape = (out_h, out_w, c)
        elif kind == "Flatten":
            shape = (int(np.prod(shape)),)
        elif kind == "Dense":
            units = config["units"]
            forward = 2 * shape[-1] * units + (units if config.get("use_bias", True) else 0)
            shape = shape[:-1] + (units,)
        elif kind == "Activation" or kind == "Dropout":
            forward = int(np.prod(shape))
        costs.append((layer.name, int(forward), int(forward) if kind in ("Conv2D", "Dense") else 0))
    return costs


def per_image(model, input_shape, data_format="channels_last"):
    """{"forward": FLOPs to infer one image, "train": FLOPs to train on one image}."""
    costs = layer_costs(model, input_shape, data_format)
    forward = sum(c[1] for c in costs)
    weighted = [c for c in costs if c[2]]
    first_input_grad = weighted[0][2] if weighted else 0
    train = 3 * forward - first_input_grad
    return {"forward": int(forward), "train": int(train)}


def utilisation(images_per_s, flops_per_image, ceiling_gflops):
    """Share of the measured matmul rate the model's FLOPs reach (None if unmeasured)."""
    if not images_per_s or not flops_per_image or not ceiling_gflops:
        return None
    return round(images_per_s * flops_per_image / (ceiling_gflops * 1e9), 4)
