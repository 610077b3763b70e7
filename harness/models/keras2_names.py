"""The public names of Keras 2.3.1, the Keras line Theano and CNTK run: what a model file may use there.

Read once from ``dir(keras.<module>)`` of the pinned Keras 2.3.1 (harness/requirements/keras2.txt),
which will not change, so the harness can tell before any job starts that a model file uses a layer
or call only Keras 3 has, without importing either Keras. ``""`` holds the top-level names.
"""
from __future__ import annotations

KERAS2_NAMES: dict[str, frozenset[str]] = {
    '': frozenset((
        'Input', 'Model', 'Sequential', 'absolute_import', 'activations', 'applications', 'backend',
        'callbacks', 'constraints', 'datasets', 'engine', 'initializers', 'layers', 'legacy',
        'losses', 'metrics', 'models', 'optimizers', 'preprocessing', 'regularizers', 'utils',
        'wrappers'
    )),
    'layers': frozenset((
        'Activation', 'ActivityRegularization', 'Add', 'AlphaDropout', 'AtrousConvolution1D',
        'AtrousConvolution2D', 'Average', 'AveragePooling1D', 'AveragePooling2D',
        'AveragePooling3D', 'AvgPool1D', 'AvgPool2D', 'AvgPool3D', 'BatchNormalization',
        'Bidirectional', 'Concatenate', 'Conv1D', 'Conv2D', 'Conv2DTranspose', 'Conv3D',
        'Conv3DTranspose', 'ConvLSTM2D', 'ConvLSTM2DCell', 'ConvRecurrent2D', 'Convolution1D',
        'Convolution2D', 'Convolution3D', 'Cropping1D', 'Cropping2D', 'Cropping3D', 'CuDNNGRU',
        'CuDNNLSTM', 'Deconvolution2D', 'Deconvolution3D', 'Dense', 'DepthwiseConv2D', 'Dot',
        'Dropout', 'ELU', 'Embedding', 'Flatten', 'GRU', 'GRUCell', 'GaussianDropout',
        'GaussianNoise', 'GlobalAveragePooling1D', 'GlobalAveragePooling2D',
        'GlobalAveragePooling3D', 'GlobalAvgPool1D', 'GlobalAvgPool2D', 'GlobalAvgPool3D',
        'GlobalMaxPool1D', 'GlobalMaxPool2D', 'GlobalMaxPool3D', 'GlobalMaxPooling1D',
        'GlobalMaxPooling2D', 'GlobalMaxPooling3D', 'Highway', 'Input', 'InputLayer', 'InputSpec',
        'LSTM', 'LSTMCell', 'Lambda', 'Layer', 'LeakyReLU', 'LocallyConnected1D',
        'LocallyConnected2D', 'Masking', 'MaxPool1D', 'MaxPool2D', 'MaxPool3D', 'MaxPooling1D',
        'MaxPooling2D', 'MaxPooling3D', 'Maximum', 'MaxoutDense', 'Minimum', 'Multiply', 'PReLU',
        'Permute', 'RNN', 'ReLU', 'Recurrent', 'RepeatVector', 'Reshape', 'SeparableConv1D',
        'SeparableConv2D', 'SimpleRNN', 'SimpleRNNCell', 'Softmax', 'SpatialDropout1D',
        'SpatialDropout2D', 'SpatialDropout3D', 'StackedRNNCells', 'Subtract', 'ThresholdedReLU',
        'TimeDistributed', 'UpSampling1D', 'UpSampling2D', 'UpSampling3D', 'ZeroPadding1D',
        'ZeroPadding2D', 'ZeroPadding3D', 'absolute_import', 'add', 'advanced_activations',
        'average', 'concatenate', 'convolutional', 'convolutional_recurrent', 'core',
        'cudnn_recurrent', 'deserialize', 'deserialize_keras_object', 'dot', 'embeddings', 'local',
        'maximum', 'merge', 'minimum', 'multiply', 'noise', 'normalization', 'pooling', 'recurrent',
        'serialize', 'subtract', 'wrappers'
    )),
    'models': frozenset((
        'Input', 'InputLayer', 'K', 'Model', 'Sequential', 'absolute_import', 'clone_model',
        'division', 'h5py', 'has_arg', 'load_model', 'model_from_config', 'model_from_json',
        'model_from_yaml', 'print_function', 'save_model', 'to_list'
    )),
    'optimizers': frozenset((
        'Adadelta', 'Adagrad', 'Adam', 'Adamax', 'K', 'Nadam', 'Optimizer', 'RMSprop', 'SGD',
        'TFOptimizer', 'absolute_import', 'adadelta', 'adagrad', 'adam', 'adamax', 'clip_norm',
        'copy', 'deserialize', 'deserialize_keras_object', 'division', 'get', 'interfaces', 'nadam',
        'np', 'print_function', 'rmsprop', 'serialize', 'serialize_keras_object', 'sgd', 'six',
        'zip'
    )),
    'activations': frozenset((
        'K', 'Layer', 'absolute_import', 'deserialize', 'deserialize_keras_object', 'division',
        'elu', 'exponential', 'get', 'hard_sigmoid', 'linear', 'print_function', 'relu', 'selu',
        'serialize', 'sigmoid', 'six', 'softmax', 'softplus', 'softsign', 'tanh', 'warnings'
    )),
    'initializers': frozenset((
        'Constant', 'Identity', 'Initializer', 'K', 'Ones', 'Orthogonal', 'RandomNormal',
        'RandomUniform', 'TruncatedNormal', 'VarianceScaling', 'Zeros', 'absolute_import',
        'constant', 'deserialize', 'deserialize_keras_object', 'division', 'get', 'glorot_normal',
        'glorot_uniform', 'he_normal', 'he_uniform', 'identity', 'lecun_normal', 'lecun_uniform',
        'normal', 'np', 'one', 'ones', 'orthogonal', 'print_function', 'random_normal',
        'random_uniform', 'serialize', 'serialize_keras_object', 'six', 'truncated_normal',
        'uniform', 'zero', 'zeros'
    )),
    'regularizers': frozenset((
        'K', 'L1L2', 'Regularizer', 'absolute_import', 'deserialize', 'deserialize_keras_object',
        'division', 'get', 'l1', 'l1_l2', 'l2', 'print_function', 'serialize',
        'serialize_keras_object', 'six'
    )),
    'constraints': frozenset((
        'Constraint', 'K', 'MaxNorm', 'MinMaxNorm', 'NonNeg', 'UnitNorm', 'absolute_import',
        'deserialize', 'deserialize_keras_object', 'division', 'get', 'max_norm', 'maxnorm',
        'min_max_norm', 'non_neg', 'nonneg', 'print_function', 'serialize',
        'serialize_keras_object', 'six', 'unit_norm', 'unitnorm'
    )),
    'losses': frozenset((
        'BinaryCrossentropy', 'CategoricalCrossentropy', 'CategoricalHinge', 'Hinge', 'Huber', 'K',
        'KLD', 'KLDivergence', 'LogCosh', 'Loss', 'LossFunctionWrapper', 'MAE', 'MAPE', 'MSE',
        'MSLE', 'MeanAbsoluteError', 'MeanAbsolutePercentageError', 'MeanSquaredError',
        'MeanSquaredLogarithmicError', 'Poisson', 'SparseCategoricalCrossentropy', 'SquaredHinge',
        'abc', 'absolute_import', 'binary_crossentropy', 'categorical_crossentropy',
        'categorical_hinge', 'cosine', 'cosine_proximity', 'cosine_similarity', 'deserialize',
        'deserialize_keras_object', 'division', 'get', 'hinge', 'huber_loss',
        'is_categorical_crossentropy', 'kld', 'kullback_leibler_divergence', 'logcosh',
        'losses_utils', 'mae', 'mape', 'mean_absolute_error', 'mean_absolute_percentage_error',
        'mean_squared_error', 'mean_squared_logarithmic_error', 'mse', 'msle', 'poisson',
        'print_function', 'serialize', 'serialize_keras_object', 'six',
        'sparse_categorical_crossentropy', 'squared_hinge'
    )),
    'metrics': frozenset((
        'AUC', 'Accuracy', 'BaseMeanIoU', 'BinaryAccuracy', 'BinaryCrossentropy',
        'CategoricalAccuracy', 'CategoricalCrossentropy', 'CategoricalHinge', 'CosineSimilarity',
        'FalseNegatives', 'FalsePositives', 'Hinge', 'K', 'KLDivergence', 'Layer', 'LogCoshError',
        'MAE', 'MAPE', 'MSE', 'MSLE', 'Mean', 'MeanAbsoluteError', 'MeanAbsolutePercentageError',
        'MeanIoU', 'MeanMetricWrapper', 'MeanSquaredError', 'MeanSquaredLogarithmicError', 'Metric',
        'Poisson', 'Precision', 'Recall', 'Reduce', 'RootMeanSquaredError',
        'SensitivityAtSpecificity', 'SensitivitySpecificityBase', 'SparseCategoricalAccuracy',
        'SparseCategoricalCrossentropy', 'SparseTopKCategoricalAccuracy',
        'SpecificityAtSensitivity', 'SquaredHinge', 'Sum', 'TopKCategoricalAccuracy',
        'TrueNegatives', 'TruePositives', 'abc', 'absolute_import', 'accuracy', 'binary_accuracy',
        'binary_crossentropy', 'categorical_accuracy', 'categorical_crossentropy',
        'categorical_hinge', 'clone_metric', 'clone_metrics', 'cosine', 'cosine_proximity',
        'cosine_similarity', 'deserialize', 'deserialize_keras_object', 'division', 'get', 'hinge',
        'kullback_leibler_divergence', 'logcosh', 'losses_utils', 'mae', 'mape',
        'mean_absolute_error', 'mean_absolute_percentage_error', 'mean_squared_error',
        'mean_squared_logarithmic_error', 'metrics_utils', 'mse', 'msle', 'np', 'poisson',
        'print_function', 'serialize', 'serialize_keras_object', 'six',
        'sparse_categorical_accuracy', 'sparse_categorical_crossentropy',
        'sparse_top_k_categorical_accuracy', 'squared_hinge', 'top_k_categorical_accuracy', 'types'
    )),
    'utils': frozenset((
        'CustomObjectScope', 'GeneratorEnqueuer', 'H5Dict', 'HDF5Matrix', 'OrderedEnqueuer',
        'Progbar', 'Sequence', 'absolute_import', 'conv_utils', 'convert_all_kernels_in_model',
        'custom_object_scope', 'data_utils', 'deserialize_keras_object', 'generic_utils',
        'get_custom_objects', 'get_file', 'get_source_inputs', 'io_utils', 'layer_utils',
        'losses_utils', 'metrics_utils', 'model_to_dot', 'multi_gpu_model', 'multi_gpu_utils',
        'normalize', 'np_utils', 'plot_model', 'print_summary', 'serialize_keras_object',
        'to_categorical', 'vis_utils'
    )),
    'callbacks': frozenset((
        'BaseLogger', 'CSVLogger', 'Callback', 'CallbackList', 'EarlyStopping', 'History', 'K',
        'LambdaCallback', 'LearningRateScheduler', 'ModelCheckpoint', 'ProgbarLogger',
        'ReduceLROnPlateau', 'RemoteMonitor', 'TensorBoard', 'TerminateOnNaN', 'absolute_import',
        'callbacks', 'tensorboard_v1'
    )),
    'backend': frozenset((
        'abs', 'all', 'any', 'arange', 'argmax', 'argmin', 'backend', 'batch_dot', 'batch_flatten',
        'batch_get_value', 'batch_normalization', 'batch_set_value', 'bias_add',
        'binary_crossentropy', 'cast', 'cast_to_floatx', 'categorical_crossentropy', 'clip',
        'common', 'concatenate', 'constant', 'control_dependencies', 'conv1d', 'conv2d',
        'conv2d_transpose', 'conv3d', 'conv3d_transpose', 'cos', 'count_params', 'ctc_batch_cost',
        'ctc_decode', 'ctc_label_dense_to_sparse', 'cumprod', 'cumsum', 'depthwise_conv2d', 'dot',
        'dropout', 'dtype', 'eager', 'elu', 'epsilon', 'equal', 'eval', 'exp', 'expand_dims', 'eye',
        'flatten', 'floatx', 'foldl', 'foldr', 'function', 'gather', 'get_uid', 'get_value',
        'gradients', 'greater', 'greater_equal', 'hard_sigmoid', 'identity', 'image_data_format',
        'in_test_phase', 'in_top_k', 'in_train_phase', 'int_shape', 'is_keras_tensor',
        'is_placeholder', 'is_sparse', 'is_tensor', 'is_variable', 'l2_normalize', 'learning_phase',
        'less', 'less_equal', 'load_backend', 'local_conv1d', 'local_conv2d', 'log', 'logsumexp',
        'map_fn', 'max', 'maximum', 'mean', 'min', 'minimum', 'moving_average_update', 'name_scope',
        'ndim', 'normalize_batch_in_training', 'normalize_data_format', 'not_equal', 'one_hot',
        'ones', 'ones_like', 'pattern_broadcast', 'permute_dimensions', 'placeholder', 'pool2d',
        'pool3d', 'pow', 'print_tensor', 'prod', 'random_binomial', 'random_normal',
        'random_normal_variable', 'random_uniform', 'random_uniform_variable', 'relu', 'repeat',
        'repeat_elements', 'reset_uids', 'reshape', 'resize_images', 'resize_volumes', 'reverse',
        'rnn', 'round', 'separable_conv1d', 'separable_conv2d', 'set_epsilon', 'set_floatx',
        'set_image_data_format', 'set_learning_phase', 'set_value', 'shape', 'sigmoid', 'sign',
        'sin', 'size', 'slice', 'softmax', 'softplus', 'softsign',
        'sparse_categorical_crossentropy', 'spatial_2d_padding', 'spatial_3d_padding', 'sqrt',
        'square', 'squeeze', 'stack', 'std', 'stop_gradient', 'sum', 'switch', 'symbolic', 'tanh',
        'temporal_padding', 'theano_backend', 'tile', 'to_dense', 'transpose', 'truncated_normal',
        'update', 'update_add', 'update_sub', 'var', 'variable', 'zeros', 'zeros_like'
    )),
}
