"""How far one training step's gradients differ between the Keras 3 backends, for any model file.

    .venv/bin/python benchmarks/step_agreement.py harness/workload/models/mobilenet_small.py
    .venv/bin/python benchmarks/step_agreement.py --stack 8      # conv-BN-ReLU x 8, then GAP and Dense

The same weights (drawn once, by the first backend) and the same batch of 32
random images go through one SGD step at learning rate 1 (dropout off) on each
backend, in the harness's Keras 3 runtime; the step's change of every weight
array is compared with the first backend's, as the fidelity check does
(largest difference over the array's largest value). ``--stack N`` builds a
plain stack of N convolution, batch normalisation and ReLU layers instead of a
file, to see how the difference grows with depth.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import runtimes

STEP = r"""
import os, sys, numpy as np
backend, path, weights, out = sys.argv[1:5]
os.environ["KERAS_BACKEND"] = backend
import keras
from harness.workload import model
keras.utils.set_random_seed(1)
net = model.build(keras, (32, 32, 3), 10, 1.0, dropout=False, optimizer=keras.optimizers.SGD(learning_rate=1.0),
                  path=path)
if os.path.exists(weights):
    stored = np.load(weights)
    net.set_weights([stored["arr_%d" % i] for i in range(len(stored.files))])
else:
    np.savez(weights, *net.get_weights())
rng = np.random.RandomState(0)
x = rng.rand(32, 32, 32, 3).astype("float32")
y = np.eye(10, dtype="float32")[rng.randint(0, 10, 32)]
start = net.get_weights()
loss = net.train_on_batch(x, y)
np.savez(out, *[a - b for a, b in zip(start, net.get_weights())])
print(float(np.ravel(loss)[0]))
"""

STACK = """
def build(keras, input_shape, n_classes):
    layers = keras.layers
    inputs = layers.Input(shape=tuple(input_shape))
    x = inputs
    for _ in range({depth}):
        x = layers.Conv2D(16, (3, 3), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.models.Model(inputs, outputs), None, "categorical_crossentropy"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a model file (harness/workload/models/*.py or your own)")
    parser.add_argument("--stack", type=int, help="instead of a file: N conv-BN-ReLU layers")
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    args = parser.parse_args()
    if bool(args.model) == bool(args.stack):
        parser.error("give a model file or --stack N")
    runtime = runtimes.resolve("keras3", REPO / ".kbench")
    with tempfile.TemporaryDirectory() as scratch:
        path = args.model
        if args.stack:
            path = str(Path(scratch) / "stack.py")
            Path(path).write_text(STACK.format(depth=args.stack))
        weights = str(Path(scratch) / "weights.npz")
        steps, losses = {}, {}
        for backend in args.backends.split(","):
            out = str(Path(scratch) / f"{backend}.npz")
            env = dict(os.environ, **runtime.env, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
            done = subprocess.run([str(runtime.python), "-c", STEP, backend, str(Path(path).resolve()), weights, out],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{backend} failed:\n{done.stderr[-2000:]}")
            losses[backend] = float(done.stdout.strip().splitlines()[-1])
            stored = np.load(out)
            steps[backend] = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    first, *others = list(steps)
    print(f"model: {args.model or f'conv-BN-ReLU x {args.stack}'}; compared with {first}")
    for backend in others:
        worst = max((float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)), i)
                    for i, (a, b) in enumerate(zip(steps[first], steps[backend])))
        loss = abs(losses[backend] - losses[first]) / abs(losses[first])
        print(f"  {backend}: loss differs by {loss:.1e} relative; gradients by {worst[0]:.2e} of their largest "
              f"value (worst: weight array {worst[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
