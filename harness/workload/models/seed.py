"""The seed's CIFAR-10 CNN (keras_multibackend), unchanged: the harness's default model.

Conv32-Conv32-Pool-Drop, Conv64-Conv64-Pool-Drop, Dense512-Drop, Dense softmax:
about 1.25 million weights. It leaves the optimizer and loss to the harness
(RMSprop at the profile's learning rate, categorical cross-entropy), as the
seed compiled it.
"""


def build(keras, input_shape, n_classes):
    layers = keras.layers
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
    return keras.models.Model(inputs, outputs)
