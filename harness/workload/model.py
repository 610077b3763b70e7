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


def load_weights(net, path):
    """Set the weights saved by ``numpy.savez(*model.get_weights())`` at ``path``."""
    import numpy as np

    with np.load(path) as stored:
        weights = [stored["arr_%d" % i] for i in range(len(stored.files))]
    net.set_weights(weights)
