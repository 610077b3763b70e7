"""``python -m harness.workload.build_check FILE --shape H,W,C --classes N``: can this model file be built?

Run by the harness in a runtime before any job starts (``harness.models.build_check``):
it imports the file, calls its ``build`` for the run's image shape and number
of classes, compiles it as a job would, and scores two random images, which
must come out as probabilities. Prints one JSON line (weights, FLOPs); on a
problem, the ``kbench-error:`` line naming the file and the problem, exit 3.
"""
import argparse
import json
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m harness.workload.build_check")
    parser.add_argument("file")
    parser.add_argument("--shape", required=True, help="the input shape, channels last: H,W,C")
    parser.add_argument("--classes", type=int, required=True)
    args = parser.parse_args(argv)
    shape = tuple(int(d) for d in args.shape.split(","))
    from harness.workload import compat, layout

    compat.apply()
    from harness.workload import flops, model

    try:
        import keras
        import numpy as np

        try:
            net = model.build(keras, shape, args.classes, 1e-3, path=args.file)
        except SystemExit as err:
            raise model.ModelError("model file %s: its build() called sys.exit(%r); it must return the model, "
                                   "not end the process" % (args.file, err.code))
        probs = model.predict(net, np.random.RandomState(0).rand(2, *shape).astype("float32"), 2)
        if probs.shape != (2, args.classes) or not np.all(np.isfinite(probs)) or np.any(probs < 0) \
                or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
            raise model.ModelError("model file %s: its outputs are not probabilities (rows sum to %s); end with a "
                                   "softmax, Dense(n_classes, activation=\"softmax\")"
                                   % (args.file, np.round(probs.sum(axis=1), 3).tolist()))
    except model.ModelError as err:
        sys.stderr.write(layout.ERROR_PREFIX + " ".join(str(err).split()) + "\n")
        return 3
    cost = flops.per_image(net, shape, keras.backend.image_data_format())
    print(json.dumps({"parameters": int(net.count_params()), "flops": cost, "keras": keras.__version__,
                      "backend": os.environ.get("KERAS_BACKEND")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
