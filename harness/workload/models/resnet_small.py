"""A small residual network with batch normalisation (ResNet-8 shaped, for 32x32 images).

A 3x3 stem, then three stages of one basic block each (two 3x3 convolutions,
each followed by batch normalisation, with an identity or 1x1 projection
shortcut added before the last ReLU), 16, 32 and 64 filters, the last two
halving the image; global average pooling and a softmax. About 79 thousand
weights: where the seed's CNN is mostly one big dense layer, this one is all
convolutions, batch statistics and a merge, so the backends are compared on
different kernels. Leaves the optimizer and loss to the harness.

The strided convolutions pad explicitly: ``padding="same"`` with a stride of 2
pads one row and column after the image on Keras 3 (TensorFlow's rule) but one
on each side on Keras 2.3.1's Theano and CNTK backends, so the same weights
compute another function there (found by the fidelity check: max |dp| 0.89
between the two Keras lines, the backends of each line agreeing to 1e-6).

Batch normalisation keeps its moving statistics with momentum 0.9, not
Keras's 0.99: the benchmark's profiles train a few hundred steps, and at 0.99
the statistics that inference uses still lag the weights by about a hundred
steps at the end (measured on the default profile: validation accuracy
0.25-0.40 against training accuracy 0.51-0.53).
"""


def _conv_bn(layers, axis, x, filters, strides, relu):
    if strides == 1:
        x = layers.Conv2D(filters, (3, 3), padding="same", use_bias=False)(x)
    else:  # "same" with a stride pads as TensorFlow does (one row and column, after), on every backend
        x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
        x = layers.Conv2D(filters, (3, 3), strides=(strides, strides), use_bias=False)(x)
    x = layers.BatchNormalization(axis=axis, momentum=0.9)(x)
    return layers.Activation("relu")(x) if relu else x


def _block(layers, axis, x, filters, strides):
    shortcut = x
    y = _conv_bn(layers, axis, x, filters, strides, relu=True)
    y = _conv_bn(layers, axis, y, filters, 1, relu=False)
    if strides != 1:
        shortcut = layers.Conv2D(filters, (1, 1), strides=(strides, strides), use_bias=False)(x)
        shortcut = layers.BatchNormalization(axis=axis, momentum=0.9)(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu")(y)


def build(keras, input_shape, n_classes):
    layers = keras.layers
    # normalise over the channels wherever the backend keeps them (CNTK runs channels first)
    axis = 1 if keras.backend.image_data_format() == "channels_first" else -1
    inputs = layers.Input(shape=tuple(input_shape))
    x = _conv_bn(layers, axis, inputs, 16, 1, relu=True)
    x = _block(layers, axis, x, 16, 1)
    x = _block(layers, axis, x, 32, 2)
    x = _block(layers, axis, x, 64, 2)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.models.Model(inputs, outputs)
