"""A small depthwise-separable network in the manner of MobileNet, for 32x32 images.

A 3x3 stem of 32 filters, then five depthwise-separable blocks (a 3x3
depthwise convolution and a 1x1 pointwise one, each with batch normalisation
and ReLU6) widening to 64, 128, 128, 256 and 256 channels, two of them halving
the image; global average pooling, dropout and a softmax. About 140 thousand
weights, nearly all in 1x1 convolutions: the backends are compared on
depthwise kernels, which each implements its own way. Trains with Adam at
1e-3, its own choice (the harness compiles it with the optimizer it returns).
"""


def _bn_relu6(layers, x):
    x = layers.BatchNormalization()(x)
    return layers.ReLU(6.0)(x)


def _separable(layers, x, filters, strides):
    x = layers.DepthwiseConv2D((3, 3), strides=(strides, strides), padding="same", use_bias=False)(x)
    x = _bn_relu6(layers, x)
    x = layers.Conv2D(filters, (1, 1), use_bias=False)(x)
    return _bn_relu6(layers, x)


def build(keras, input_shape, n_classes):
    layers = keras.layers
    inputs = layers.Input(shape=tuple(input_shape))
    x = layers.Conv2D(32, (3, 3), padding="same", use_bias=False)(inputs)
    x = _bn_relu6(layers, x)
    for filters, strides in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        x = _separable(layers, x, filters, strides)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.models.Model(inputs, outputs)
    return model, keras.optimizers.Adam(learning_rate=1e-3), "categorical_crossentropy"
