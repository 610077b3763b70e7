"""A model file's network, built and compiled the one way every phase of every backend shares.

A model file (``harness/workload/models/<name>.py`` for the shipped ones, or
any file a user names with ``--model``) defines ``build(keras, input_shape,
n_classes)``, written once against the API Keras 2.3.1 and Keras 3 share, in
Python 3.6 syntax. It returns an uncompiled Keras model whose output is a
softmax over ``n_classes``, or ``(model, optimizer)`` or ``(model, optimizer,
loss)`` when it wants its own (``None`` for either keeps the harness's:
RMSprop at the profile's learning rate, categorical cross-entropy, as the
seed compiled its CNN). The run folder holds the copy every job builds
(``layout.MODEL_FILE``), checked against the SHA-256 in run.json.
"""
import hashlib
import os

from harness.workload import layout

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), layout.MODELS)
"""The shipped model files, beside the workload code (so every runtime and image has them)."""

DROPOUT_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
                  "AlphaDropout", "GaussianNoise")
"""Layers that make training random; ``dropout=False`` builds each as a Dropout of rate 0 (the identity)."""


class ModelError(ValueError):
    """The model file cannot give a usable model; the message names the file and the problem."""


def shipped_path(name):
    """The file of a shipped model (``resnet-small`` -> ``models/resnet_small.py``)."""
    return os.path.join(MODELS_DIR, layout.model_file_name(name))


def job_model_path(job):
    """The model file a job builds: the run folder's copy, checked against run.json's hash.

    Raises ModelError when the copy is missing or changed since the harness
    wrote it. A run.json without a model (an older run) builds the seed's CNN.
    """
    spec = job.settings.get("model")
    if not spec:
        return shipped_path(layout.DEFAULT_MODEL)
    path = os.path.join(job.run_dir, spec.get("file") or layout.MODEL_FILE)
    if not os.path.isfile(path):
        raise ModelError("the run's model file %s is missing; start the run through the harness, which copies "
                         "the model there" % path)
    found = layout.sha256_file(path)
    if spec.get("sha256") and found != spec["sha256"]:
        raise ModelError("the run's model file %s changed since the run started (sha256 %s, run.json says %s); "
                         "start a new run" % (path, found[:12], spec["sha256"][:12]))
    return path


def describe(job, path):
    """What a result file says of the model: its name and the hash of the file the job built."""
    spec = job.settings.get("model") or {}
    return {"name": spec.get("name") or layout.DEFAULT_MODEL, "sha256": layout.sha256_file(path)}


def load_module(path):
    """Import a model file by its path; every problem is one ModelError naming the file."""
    import importlib.util

    if not os.path.isfile(path):
        raise ModelError("model file %s does not exist" % path)
    name = "kbench_model_" + hashlib.sha256(os.path.abspath(path).encode("utf-8")).hexdigest()[:12]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as err:  # whatever the file raises while it imports: its author's problem, said once
        raise ModelError("model file %s fails to import: %s: %s" % (path, type(err).__name__, err))
    if not callable(getattr(module, "build", None)):
        raise ModelError("model file %s has no build(keras, input_shape, n_classes) function" % path)
    return module


def build_network(keras, path, input_shape, n_classes, dropout=True):
    """``(model, optimizer or None, loss or None)`` from the file's ``build``, checked, not compiled."""
    module = load_module(path)
    given = keras if dropout else _WithoutDropout(keras)
    try:
        made = module.build(given, tuple(input_shape), int(n_classes))
    except ModelError:
        raise
    except Exception as err:
        raise ModelError("model file %s: build() raised %s: %s" % (path, type(err).__name__, err))
    optimizer = loss = None
    if isinstance(made, (tuple, list)):
        if not 1 <= len(made) <= 3:
            raise ModelError("model file %s: build() returned %d values; return a model, or (model, optimizer) "
                             "or (model, optimizer, loss)" % (path, len(made)))
        made, rest = made[0], list(made[1:]) + [None, None]
        optimizer, loss = rest[0], rest[1]
    if not isinstance(made, keras.models.Model):
        raise ModelError("model file %s: build() returned %s, not a Keras model; return keras.models.Model(inputs, "
                         "outputs) or a keras.models.Sequential" % (path, type(made).__name__))
    shape = output_shape(made)
    if shape is None or len(shape) != 2 or shape[-1] != n_classes:
        raise ModelError("model file %s: the model's output has shape %s but the data set has %d classes; end "
                         "with Dense(n_classes, activation=\"softmax\")" % (path, _shape_text(shape), n_classes))
    return made, optimizer, loss


def build(keras, input_shape, n_classes, learning_rate, dropout=True, optimizer=None, path=None):
    """The compiled model of the file at ``path`` (default: the seed's CNN).

    ``dropout=False`` builds every dropout-like layer as the identity (they
    hold no weights, so the weight list is the same) for checks that need a
    deterministic step; ``optimizer`` replaces both the file's and the
    harness's optimizer.
    """
    net, wanted, loss = build_network(keras, path or shipped_path(layout.DEFAULT_MODEL), input_shape, n_classes,
                                      dropout=dropout)
    options = {}
    if str(getattr(keras, "__version__", "2")).startswith("3"):  # Keras 2 has no jit_compile
        from harness.workload import environment

        options["jit_compile"] = environment.jit_compile()
    net.compile(loss=loss or "categorical_crossentropy",
                optimizer=optimizer or wanted or keras.optimizers.RMSprop(learning_rate=learning_rate),
                metrics=["accuracy"], **options)
    return net


def output_shape(net):
    """The model's output shape, batch axis included, on either Keras line (None if it has none yet)."""
    shape = getattr(net, "output_shape", None)
    if shape is None:
        outputs = getattr(net, "outputs", None) or []
        if len(outputs) != 1:
            return None
        shape = getattr(outputs[0], "shape", None)
    if isinstance(shape, list):  # several outputs
        return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        return None


def _shape_text(shape):
    return "unknown (build the model on keras.layers.Input(shape=input_shape))" if shape is None else str(shape)


def trainable_mask(net):
    """For each array of ``net.get_weights()``, whether training moves it by its gradient.

    False for a batch normalisation's moving mean and variance: a step changes
    them by an update rule, not by a gradient. None when the layers' weights do
    not line up with the model's (then nothing is assumed).
    """
    mask = []
    for layer in net.layers:
        trainable = set(id(w) for w in layer.trainable_weights)
        mask.extend(id(w) in trainable for w in layer.weights)
    return mask if len(mask) == len(net.get_weights()) else None


class _WithoutDropout(object):
    """``keras`` whose ``layers`` build dropout-like layers as Dropout(0), the identity."""

    def __init__(self, keras):
        self._keras = keras
        self.layers = _LayersWithoutDropout(keras.layers)

    def __getattr__(self, name):
        return getattr(self._keras, name)


class _LayersWithoutDropout(object):
    def __init__(self, layers):
        self._layers = layers

    def __getattr__(self, name):
        if name in DROPOUT_LAYERS:
            return lambda *args, **kwargs: self._layers.Dropout(0.0, name=kwargs.get("name"))
        return getattr(self._layers, name)


def one_hot(keras, labels, n_classes):
    return keras.utils.to_categorical(labels, n_classes).astype("float32")


def predict(net, x, batch):
    """Softmax outputs in inference mode (dropout off), float32, batch by batch.

    Every phase that scores a model goes through here, so every backend's
    figures come from the same call and the same numpy code after it.
    """
    import numpy as np

    if not len(x):
        return np.zeros((0,) + tuple(output_shape(net)[1:]), dtype=np.float32)
    return np.concatenate([np.asarray(net.predict_on_batch(x[s:s + batch]), dtype=np.float32)
                           for s in range(0, len(x), batch)])


FLIPPED_KERNELS = ("theano",)
"""Backends whose convolution flips its kernel. Keras 2.3.1's Theano backend calls
``theano.tensor.nnet.conv2d`` with its default ``filter_flip=True``: a true
convolution, where TensorFlow, JAX, PyTorch and CNTK compute a cross-correlation.
The same kernel array therefore means another function on Theano (found by the
fidelity check: max |dp| 0.009 on tiny data, every layer off from the first
convolution; with each kernel flipped in both spatial axes the outputs agree to
float32 rounding)."""


def portable(backend, weights, net=None):
    """``model.get_weights()`` in the portable layout (cross-correlation kernels), or back.

    Flipping both spatial axes of every Conv2D kernel is its own inverse, so
    the same call converts in both directions; on other backends it changes
    nothing. ``weights.npz`` always holds the portable layout. Given the model
    (``net``), only Conv2D kernels flip: Keras 2.3.1's Theano backend flips a
    depthwise kernel itself before its convolution flips it again, so a
    DepthwiseConv2D (and a SeparableConv2D's depthwise part) already
    cross-correlates (found by the fidelity check on mobilenet-small). Without
    the model, every 4-D array flips (the seed's CNN has only Conv2D kernels).
    """
    if backend not in FLIPPED_KERNELS:
        return list(weights)
    flips = flipped_kernels(net) if net is not None else None
    if flips is None or len(flips) != len(weights):
        flips = [True] * len(weights)
    return [w[::-1, ::-1].copy() if w.ndim == 4 and flip else w for w, flip in zip(weights, flips)]


def flipped_kernels(net):
    """For each array of ``net.get_weights()``: is it a Conv2D kernel (which Theano's convolution flips)?"""
    flips = []
    for layer in net.layers:
        kernel = getattr(layer, "kernel", None) if layer.__class__.__name__ == "Conv2D" else None
        flips.extend(kernel is not None and w is kernel for w in layer.weights)
    return flips


def read_weights(path):
    """The arrays saved by ``numpy.savez(*weights)`` at ``path``, in order."""
    import numpy as np

    with np.load(path) as stored:
        return [stored["arr_%d" % i] for i in range(len(stored.files))]


def load_weights(net, backend, path):
    """Set portable weights saved at ``path`` into this backend's model."""
    net.set_weights(portable(backend, read_weights(path), net))
