"""Where does Keras's running training accuracy come from, on one backend? Evidence for issue 12.

Run with a backend runtime's own Python (it imports Keras; Python 3.6 syntax):

    KBENCH=/tmp/fresh/.kbench/runtimes
    LD_LIBRARY_PATH=$KBENCH/keras2-py36-*-mpi $KBENCH/keras2-py36-*/bin/python benchmarks/accuracy_probe.py cntk

It trains the seed's CNN (``harness.workload.model``) on 1,024 synthetic
images, one epoch at a time, and prints per epoch Keras's own figure beside
(a) each batch scored in inference mode right after its own optimizer step,
averaged over the epoch's batches (all, and all but the last), and (b) the
whole split in inference mode at the epoch's end. Keras 2.3.1's CNTK backend
runs a stateful metric's updates as "unrelated updates" with ``eval`` after
``train_minibatch`` (keras/backend/cntk_backend.py, ``Function.__call__``): no
dropout, weights already stepped, and the reported value lags one batch. On
CNTK the Keras figure equals (a) over all batches but the last, exactly; on the
other backends it is the dropout-on, before-the-step figure and does not.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))


def main(backend, n=1024, classes=10, batch=32, epochs=3):
    os.environ["KERAS_BACKEND"] = backend
    from harness.workload import compat

    compat.apply()
    import keras

    from harness.workload import model

    channels_first = backend == "cntk"
    keras.backend.set_image_data_format("channels_first" if channels_first else "channels_last")
    rng = np.random.RandomState(0)
    y = rng.randint(0, classes, n)
    x = rng.rand(n, 32, 32, 3).astype("float32") * 0.6
    for i, c in enumerate(y):  # a class-dependent stripe: learnable, not trivial in one epoch
        x[i, (c * 3) % 32:(c * 3) % 32 + 4, :, c % 3] += 0.4
    if channels_first:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    np.random.seed(1)
    net = model.build(keras, x.shape[1:], classes, 1e-3)
    y1 = model.one_hot(keras, y, classes)
    after_step = []

    class AfterStep(keras.callbacks.Callback):
        def on_batch_end(self, b, logs=None):
            rows = slice(b * batch, (b + 1) * batch)
            probs = np.asarray(net.predict_on_batch(x[rows]))
            after_step.append(float(np.mean(probs.argmax(1) == y[rows])))

    rows = []
    for epoch in range(1, epochs + 1):
        del after_step[:]
        fitted = net.fit(x, y1, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[AfterStep()])
        logs = fitted.history
        whole = model.predict(net, x, 128)
        rows.append({"epoch": epoch, "keras_running": round(float(logs.get("accuracy", logs.get("acc"))[-1]), 4),
                     "loss": round(float(logs["loss"][-1]), 4),
                     "after_step_inference_all": round(float(np.mean(after_step)), 4),
                     "after_step_inference_but_last": round(float(np.mean(after_step[:-1])), 4),
                     "whole_split_inference_at_end": round(float(np.mean(whole.argmax(1) == y)), 4)})
    print(json.dumps({"backend": backend, "keras": keras.__version__, "epochs": rows}))


if __name__ == "__main__":
    main(sys.argv[1])
