"""``fidelity``: run every finished member's trained weights through this backend's model.

The project's promise is one model on five backends. If two backends load the
same weights and give different probabilities for the same images, one of them
computes another function (a transposed kernel, a channels-first slip, another
padding rule, a broken weight conversion), and comparing their accuracies
compares different models. This job loads each ``<member>/weights.npz`` whose
train job finished into this backend's model, scores a fixed slice of the test
split (its first ``FIDELITY_IMAGES`` images, the same on every backend) in
inference mode, and writes the probabilities, one array per weights source, to
``fidelity_probs.npz``; the harness compares them across backends
(``harness.scoring.fidelity``). It runs after every train job of the run has ended.
"""
import hashlib
import os
import time

import numpy as np

from harness.workload import data, environment, events, faults, layout, model
from harness.workload.job import InputError

FIDELITY_IMAGES = 300
"""Test images scored per weights source: enough to see a wrong forward pass
(a slip changes nearly every output), a second or two per source on a CPU."""
STEP_IMAGES = 32
"""The fixed batch of the one-step check: the first training images, one batch of the seed's size."""


def finished_members(job):
    """Backends of the run whose train job left weights and a result: name -> weights path."""
    found = {}
    for name in job.settings.get("backends", []):
        folder = layout.backend_dir(job.shared, job.run_id, name)
        weights = os.path.join(folder, layout.WEIGHTS)
        if os.path.isfile(weights) and os.path.isfile(os.path.join(folder, layout.result_name("train"))):
            found[name] = weights
    return found


def run(job, keras):
    profile = job.profile
    sources = finished_members(job)
    if job.backend not in sources:
        raise InputError("no trained weights for %s in run %s; run its train phase first"
                         % (job.backend, job.run_id))
    t = time.time()
    arrays = data.load(job.settings["dataset"], job.shared, job.cache_dir, say=job.say)
    prepared = data.prepare(arrays, profile, splits=("train", "test"),
                            channels_first=keras.backend.image_data_format() == "channels_first")
    n = min(FIDELITY_IMAGES, len(prepared.y["test"]))
    x = prepared.floats("test", np.arange(n))
    data_s = time.time() - t
    job.events.emit(events.DATA_LOADED, seconds=round(data_s, 3), n_test=n)

    # the training step comes first: CNTK 2.7 on one thread dies of SIGFPE when a model
    # trains after any model has predicted in the same process (measured; not after training)
    t = time.time()
    reference = sorted(sources)[0]
    step = one_step(keras, job, prepared, reference, sources[reference])
    step_s = time.time() - t

    net = model.build(keras, prepared.input_shape(), len(prepared.classes), profile["learning_rate"],
                      path=model.job_model_path(job))
    outputs, described = {}, {}
    t = time.time()
    for name, path in sorted(sources.items()):
        weights = faults.alter_weights(job.backend, job.phase, model.read_weights(path))
        try:
            net.set_weights(model.portable(job.backend, weights, net))
        except ValueError as err:
            raise InputError("%s's weights %s do not fit %s's model (%s); the two backends build different "
                             "models" % (name, path, job.backend, err))
        outputs[name] = model.predict(net, x, profile["predict_batch_size"])
        described[name] = {"weights_sha256": layout.sha256_file(path), "rows": int(n)}
    score_s = time.time() - t
    job.events.emit(events.PREDICTED, split="fidelity", images=n * len(outputs),
                    images_per_s=round(n * len(outputs) / max(score_s, 1e-9), 1))

    layout.atomic_save_named_npz(job.path(layout.FIDELITY_PROBS), outputs)
    return {
        "schema": layout.SCHEMA_VERSION,
        "kind": "fidelity",
        "run_id": job.run_id,
        "backend": job.backend,
        "data": {"fingerprint": prepared.fingerprint, "source": job.settings["dataset"],
                 "split": "test", "rows": "the first %d" % n},
        "images": int(n),
        "sources": described,
        "outputs": layout.FIDELITY_PROBS,
        "environment": environment.describe(keras, job.backend),
        "step": step,
        "timing": {"data_load_s": round(data_s, 3), "scoring_s": round(score_s, 3), "step_s": round(step_s, 3),
                   "total_s": round(job.elapsed(), 3)},
    }


TIE_NOISE = 0.5 / 255.0
"""Largest noise added to the one-step batch: under half a grey level."""


def tie_breaking_noise(shape, fingerprint, channels_first=False):
    """Seeded noise, the same on every backend, that leaves no exact ties in the step's batch.

    A subgradient is a convention where a function has a kink: on CIFAR-10's
    flat image regions, neighbouring convolution outputs are exactly equal, and
    Theano's max-pooling gradient goes to every tied maximum where the other
    backends pick one (measured on the default profile: theano's first-kernel
    gradient 3% of its largest value off every other backend's, loss equal to
    8e-8). Noise below half a grey level makes ties (and ReLUs at exactly 0)
    events of probability zero, so the check compares the gradient itself.
    ``shape`` is the batch's NHWC shape.
    """
    seed = int(hashlib.sha256(str(fingerprint).encode("utf-8")).hexdigest()[:8], 16)
    noise = np.random.RandomState(seed).uniform(0.0, TIE_NOISE, size=shape).astype(np.float32)
    # drawn in NHWC, the images' own order, then laid out as the model wants: the same noise per
    # pixel on every backend (drawn in the model's shape, CNTK's channels-first batch got other noise)
    return np.ascontiguousarray(noise.transpose(0, 3, 1, 2)) if channels_first else noise


def one_step(keras, job, prepared, reference, path):
    """Loss and gradients of one training step from ``reference``'s weights, dropout off.

    Every backend starts from the same weights (one member's, the first by
    name: all fidelity jobs see the same members) and takes one plain SGD step
    with learning rate 1 on the same fixed batch, so the weights' change is
    the gradient of the batch's mean loss (``w - w'``, exact to float32
    rounding of ``w``). Writes the gradients to ``step_grads.npz``; returns the
    losses (Keras's and the harness's numpy NLL from the same weights).

    Any model works: dropout-like layers are built as the identity; weights a
    step moves by an update rule rather than a gradient (a batch
    normalisation's moving mean and variance, whose update Keras 2.3.1 and
    Keras 3 backends need not compute alike) are written as zeros and listed
    under ``not_gradients``. The step itself uses the batch's statistics, so
    the gradients of the trainable weights still check the whole forward and
    backward pass.
    """
    rows = np.arange(min(STEP_IMAGES, len(prepared.y["train"])))
    x, labels = prepared.floats("train", rows), prepared.y["train"][rows]
    x = x + tie_breaking_noise(prepared.pixels("train", rows).shape, prepared.fingerprint,
                               prepared.channels_first)
    n_classes = len(prepared.classes)
    net = model.build(keras, prepared.input_shape(), n_classes, 1.0, dropout=False,
                      optimizer=keras.optimizers.SGD(learning_rate=1.0), path=model.job_model_path(job))
    weights = faults.alter_weights(job.backend, job.phase, model.read_weights(path))
    net.set_weights(model.portable(job.backend, weights, net))
    start = net.get_weights()
    keras_loss = net.train_on_batch(x, model.one_hot(keras, labels, n_classes))
    if isinstance(keras_loss, (list, tuple)):
        keras_loss = keras_loss[0]
    grads = step_change(start, net.get_weights())
    # the same step from weights and batch one float32 ulp away: how far rounding alone moves each gradient
    # (drawn in the portable layout and NHWC, then laid out as this backend's model wants: the same
    # nudge of every value on every backend, Theano's flipped kernels and CNTK's channels-first batch too)
    nhwc = x.transpose(0, 2, 3, 1) if prepared.channels_first else x
    nudged = ulp_nudge(model.portable(job.backend, start, net) + [nhwc], prepared.fingerprint)
    nudged_start = model.portable(job.backend, nudged[:-1], net)
    nudged_x = np.ascontiguousarray(nudged[-1].transpose(0, 3, 1, 2)) if prepared.channels_first else nudged[-1]
    net.set_weights(nudged_start)
    net.train_on_batch(nudged_x, model.one_hot(keras, labels, n_classes))
    nudged_grads = step_change(nudged_start, net.get_weights())
    # a batch normalisation's moving statistics move by an update rule, not a gradient: left at zero
    mask = model.trainable_mask(net)
    moved_by_rule = [i for i, trainable in enumerate(mask or []) if not trainable]
    for i in moved_by_rule:
        grads[i] = np.zeros_like(grads[i])
        nudged_grads[i] = np.zeros_like(nudged_grads[i])
    grads = model.portable(job.backend, grads, net)
    sensitivity = [relative_change(a, b) for a, b in zip(grads, model.portable(job.backend, nudged_grads, net))]
    layout.atomic_save_npz(job.path(layout.STEP_GRADS), grads)
    net.set_weights(start)  # the harness's own loss, from the same starting weights
    probs = model.predict(net, x, len(rows))
    picked = np.clip(probs[np.arange(len(rows)), labels], 1e-7, 1.0)
    return {"reference_weights": reference, "images": int(len(rows)), "learning_rate": 1.0,
            "loss_numpy": float(-np.mean(np.log(picked))), "loss_keras": float(keras_loss),
            "gradients": layout.STEP_GRADS, "not_gradients": moved_by_rule, "sensitivity": sensitivity}


def step_change(before, after):
    """The weights' change in one SGD step at learning rate 1 (the gradient), in float32."""
    return [(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)).astype(np.float32)
            for b, a in zip(before, after)]


def ulp_nudge(arrays, fingerprint):
    """Each value moved one float32 step up or down, at random (seeded, the same on every backend)."""
    seed = int(hashlib.sha256(("ulp" + str(fingerprint)).encode("utf-8")).hexdigest()[:8], 16)
    rng = np.random.RandomState(seed)
    nudged = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        up = rng.randint(0, 2, size=a.shape).astype(bool)
        toward = np.where(up, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)
        nudged.append(np.nextafter(a, toward).astype(np.float32))
    return nudged


def relative_change(a, b):
    """max |a - b| over the larger of the two arrays' largest magnitudes (0 for an all-zero pair)."""
    if not a.size:
        return 0.0
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    if scale == 0.0:
        return 0.0
    change = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return change / scale if np.isfinite(change) else float("inf")

