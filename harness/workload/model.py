"""The seed's CIFAR-10 CNN, written once against the API Keras 2.3.1 and Keras 3 share."""


def build(keras, input_shape, n_classes, learning_rate):
    """Conv32-Conv32-Pool-Drop, Conv64-Conv64-Pool-Drop, Dense512-Drop, Dense softmax."""
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
    model = keras.models.Model(inputs, outputs)
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
                  metrics=["accuracy"])
    return model


def one_hot(keras, labels, n_classes):
    return keras.utils.to_categorical(labels, n_classes).astype("float32")
