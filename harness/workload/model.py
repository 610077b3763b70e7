"""The seed's CIFAR-10 CNN, written once against the API Keras 2.3.1 and Keras 3 share."""


def build(keras, input_shape, n_classes, learning_rate, dropout=True, optimizer=None):
    """Conv32-Conv32-Pool-Drop, Conv64-Conv64-Pool-Drop, Dense512-Drop, Dense softmax.

    ``dropout=False`` leaves the Dropout layers out (they hold no weights, so
    the weight list is the same) for checks that need a deterministic step;
    ``optimizer`` replaces the seed's RMSprop.
    """
    layers = keras.layers
    if not dropout:
        layers = _NoDropout(layers)
    inputs = layers.Input(shape=tuple(input_shape))
    x = layers.Conv2D(32, (3, 3), padding="same")(inputs)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(32, (3, 3))(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(64, (3, 3), padding="same")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(64, (3, 3))(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(n_classes)(x)
    outputs = layers.Activation("softmax")(x)
    model = keras.models.Model(inputs, outputs)
    model.compile(loss="categorical_crossentropy",
                  optimizer=optimizer or keras.optimizers.RMSprop(learning_rate=learning_rate),
                  metrics=["accuracy"])
    return model


class _NoDropout(object):
    """``keras.layers`` with Dropout as the identity."""

    def __init__(self, layers):
        self._layers = layers

    def __getattr__(self, name):
        if name == "Dropout":
            return lambda rate: (lambda x: x)
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
        return np.zeros((0,) + tuple(net.output_shape[1:]), dtype=np.float32)
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


def portable(backend, weights):
    """``model.get_weights()`` in the portable layout (cross-correlation kernels), or back.

    Flipping both spatial axes of every convolution kernel is its own inverse,
    so the same call converts in both directions; on other backends it changes
    nothing. ``weights.npz`` always holds the portable layout.
    """
    if backend not in FLIPPED_KERNELS:
        return list(weights)
    return [w[::-1, ::-1].copy() if w.ndim == 4 else w for w in weights]


def read_weights(path):
    """The arrays saved by ``numpy.savez(*weights)`` at ``path``, in order."""
    import numpy as np

    with np.load(path) as stored:
        return [stored["arr_%d" % i] for i in range(len(stored.files))]


def load_weights(net, backend, path):
    """Set portable weights saved at ``path`` into this backend's model."""
    net.set_weights(portable(backend, read_weights(path)))
