"""A small depthwise-separable network in the manner of MobileNet, for 32x32 images.

A 3x3 stem of 16 filters, then five depthwise-separable blocks (a 3x3
depthwise convolution and a 1x1 pointwise one, each with batch normalisation
and ReLU6) widening to 32, 64, 64, 128 and 128 channels, two of them halving
the image; global average pooling, dropout and a softmax. Most of its weights
are in 1x1 convolutions: the backends are compared on depthwise kernels and
many batch normalisations, which each implements its own way. Half the widths
of a MobileNet's first blocks: Keras 2.3.1's CNTK backend trains batch
normalisation slowly (measured on one core: 8.5 img/s at twice these widths,
82 img/s at these), and the default profile should take minutes on every backend.

Strided convolutions pad explicitly, as in resnet-small: Keras 2.3.1's
Theano and CNTK backends pad ``"same"`` with a stride on both sides, Keras 3
after the image only (the fidelity check measured max |dp| 0.86-0.88 for
Theano and CNTK against the Keras 3 backends on the default profile).

Batch normalisation keeps its moving statistics with momentum 0.9, not
Keras's 0.99: the benchmark's profiles train a few hundred steps, and at 0.99
the statistics that inference uses still lag the weights by about a hundred
steps at the end (measured on the default profile: validation accuracy
0.25-0.40 against training accuracy 0.51-0.53). Trains with Adam at
1e-3, its own choice (the harness compiles it with the optimizer it returns).
"""


def _bn_relu6(layers, axis, x):
    x = layers.BatchNormalization(axis=axis, momentum=0.9)(x)
    return layers.ReLU(6.0)(x)


def _separable(layers, axis, x, filters, strides):
    if strides == 1:
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
    else:  # "same" with a stride pads as TensorFlow does (one row and column, after), on every backend
        x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
        x = layers.DepthwiseConv2D((3, 3), strides=(strides, strides), use_bias=False)(x)
    x = _bn_relu6(layers, axis, x)
    x = layers.Conv2D(filters, (1, 1), use_bias=False)(x)
    return _bn_relu6(layers, axis, x)


def build(keras, input_shape, n_classes):
    layers = keras.layers
    # normalise over the channels wherever the backend keeps them (CNTK runs channels first)
    axis = 1 if keras.backend.image_data_format() == "channels_first" else -1
    inputs = layers.Input(shape=tuple(input_shape))
    x = layers.Conv2D(16, (3, 3), padding="same", use_bias=False)(inputs)
    x = _bn_relu6(layers, axis, x)
    for filters, strides in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
        x = _separable(layers, axis, x, filters, strides)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.models.Model(inputs, outputs)
    return model, keras.optimizers.Adam(learning_rate=1e-3), "categorical_crossentropy"
