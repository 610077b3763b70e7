"""``train``: fit the run's model on the run's training split and record everything.

Timings separate start-up (imports, data, model build) and the first epoch
(which includes tracing and compilation) from steady-state work.
"""
import os
import random
import time

import numpy as np

from harness.workload import data, environment, events, faults, flops, layout, model
from harness.workload.job import InputError
from harness.workload.timing import StepTimer, steady_basis, steady_rate, summarise_epochs

TRAIN_EVAL_IMAGES = 2000
"""Training images scored in inference mode after training (a seeded sample when the
split is larger): enough for a figure good to about a point, cheap next to an epoch."""


def training_seed(profile: dict) -> int:
    """The seed of initialisation and shuffling: the profile's ``train_seed`` (a repeat's), else ``seed``."""
    value = profile.get("train_seed")
    return int(profile["seed"] if value is None else value)


def _seed_everything(keras, seed):
    random.seed(seed)
    np.random.seed(seed)
    set_seed = getattr(getattr(keras, "utils", None), "set_random_seed", None)
    if set_seed is not None:
        set_seed(seed)


def run(job, keras):
    profile = job.profile
    t = time.time()
    arrays = data.load(job.settings["dataset"], job.shared, job.cache_dir, say=job.say)
    prepared = data.prepare(arrays, profile, channels_first=_channels_first(keras))
    data_s = time.time() - t
    y_train = prepared.y["train"]
    input_shape = prepared.input_shape()
    n_classes = len(prepared.classes)
    job.events.emit(events.DATA_LOADED, seconds=round(data_s, 3), n_train=len(y_train),
                    n_val=len(prepared.y["val"]), n_test=len(prepared.y["test"]))

    train_seed = training_seed(profile)
    _seed_everything(keras, train_seed)
    t = time.time()
    model_path = model.job_model_path(job)
    net = model.build(keras, input_shape, n_classes, profile["learning_rate"], path=model_path)
    build_s = time.time() - t
    cost = flops.per_image(net, input_shape, keras.backend.image_data_format())
    startup_s = job.elapsed()
    job.events.emit(events.MODEL_READY, seconds=round(build_s, 3), startup_s=round(startup_s, 3),
                    parameters=int(net.count_params()))

    y_train_1h = model.one_hot(keras, y_train, n_classes)
    batch = profile["batch_size"]
    steps = int(np.ceil(len(y_train) / float(batch)))
    history, timers = [], []
    for epoch in range(1, profile["epochs"] + 1):
        order = np.random.RandomState(train_seed + epoch).permutation(len(y_train))
        x_epoch, y_epoch = prepared.floats("train", order), y_train_1h[order]
        timer = StepTimer(keras, job.events, epoch, steps, batch, slowdown=faults.slowdown(job.backend, "train"))
        job.events.emit(events.EPOCH_START, epoch=epoch, steps=steps)
        t = time.perf_counter()
        fitted = net.fit(x_epoch, y_epoch, batch_size=batch, epochs=1, shuffle=False, verbose=0,
                         callbacks=[timer.callback])
        seconds = time.perf_counter() - t
        logs = fitted.history
        record = {
            "epoch": epoch,
            "seconds": round(seconds, 4),
            "images": int(len(y_train)),
            "images_per_s": round(len(y_train) / seconds, 2),
            "loss": float(logs["loss"][-1]),
            "accuracy": float(logs.get("accuracy", logs.get("acc"))[-1]),
        }
        if len(prepared.y["val"]):
            val_loss, val_acc = _evaluate(keras, net, prepared, "val", profile, n_classes)
            record.update(val_loss=val_loss, val_accuracy=val_acc)
        history.append(record)
        timers.append(timer)
        for what, key in (("training loss", "loss"), ("validation loss", "val_loss")):
            if not np.isfinite(record.get(key, 0.0)):
                _diverged(job, keras, net, profile, history, epoch, what, record[key])
        job.events.emit(events.EPOCH_END, **record)
        faults.maybe_fail(job.backend, "train", "epoch-%d" % epoch)

    test_loss, test_acc = _evaluate(keras, net, prepared, "test", profile, n_classes)
    train_eval = evaluate_train_split(net, prepared, profile)
    for what, value in (("test loss", test_loss), ("training loss in inference mode", train_eval["loss"])):
        if not np.isfinite(value):  # finite while training, not after
            _diverged(job, keras, net, profile, history, len(history), what, value)
    job.events.emit(events.EVALUATED, split="train", **train_eval)
    job.events.emit(events.EVALUATED, split="test", loss=test_loss, accuracy=test_acc)
    layout.atomic_save_npz(job.path(layout.WEIGHTS), model.portable(job.backend, net.get_weights(), net))

    final = history[-1]
    result = {
        "schema": layout.SCHEMA_VERSION,
        "kind": "train",
        "run_id": job.run_id,
        "backend": job.backend,
        "data": _data_record(prepared, job.settings),
        "settings": dict({k: profile[k] for k in ("epochs", "batch_size", "learning_rate", "seed")},
                         train_seed=train_seed),
        "environment": environment.describe(keras, job.backend),
        "history": history,
        "final": {
            "train_accuracy": final["accuracy"],
            "train_loss": final["loss"],
            "train_accuracy_inference": train_eval["accuracy"],
            "train_loss_inference": train_eval["loss"],
            "train_inference_sample": {k: train_eval[k] for k in ("images", "of", "seed")},
            "val_accuracy": final.get("val_accuracy"),
            "val_loss": final.get("val_loss"),
            "test_accuracy": test_acc,
            "test_loss": test_loss,
        },
        "timing": dict(
            summarise_epochs(history, timers),
            startup_s=round(startup_s, 3),
            data_load_s=round(data_s, 3),
            model_build_s=round(build_s, 3),
            total_s=round(job.elapsed(), 3),
        ),
        "model": dict(model.describe(job, model_path), parameters=int(net.count_params()),
                      input_shape=list(input_shape), classes=prepared.classes),
        "peak_rss_mb": environment.peak_rss_mb(),
        "cpu": environment.cpu_use(job.elapsed()),
    }
    steady = steady_rate(history, timers)
    result["timing"]["steady_images_per_s"] = steady
    result["timing"]["steady_basis"] = steady_basis(history, timers)
    result["flops"] = cost  # utilisation comes from the speed phase, measured alone against the ceiling
    return result


def _diverged(job, keras, net, profile, history, epoch, what, value):
    """A loss is NaN or infinite: keep what training recorded for inspection (``train.json`` with
    ``diverged`` and the non-finite figures as null) and fail the job in one line naming the learning rate."""
    rate = learning_rate(keras, net, profile["learning_rate"])
    message = ("the model diverged: its %s became %s in epoch %d at learning rate %s; lower the learning rate "
               "(the profile's learning_rate, or the optimizer's in the model file)"
               % (what, value, epoch, "%g" % rate if rate is not None else "?"))
    result = {"schema": layout.SCHEMA_VERSION, "kind": "train", "run_id": job.run_id, "backend": job.backend,
              "diverged": {"epoch": epoch, "learning_rate": rate, "message": message},
              "history": [dict((k, v if not isinstance(v, float) or np.isfinite(v) else None)
                               for k, v in row.items()) for row in history]}
    layout.atomic_write_json(job.path(layout.result_name("train")), result)
    raise Diverged(message)


class Diverged(InputError):
    """Training produced a NaN or infinite loss; the message names the learning rate and the fix (the same
    settings diverge again: retrying cannot help)."""


def learning_rate(keras, net, asked):
    """The learning rate the model trains with: its optimizer's (a model file may compile its own), else
    ``asked``; None when neither is a number."""
    optimizer = getattr(net, "optimizer", None)
    value = getattr(optimizer, "learning_rate", getattr(optimizer, "lr", None))
    try:
        value = float(np.asarray(keras.backend.get_value(value) if hasattr(keras.backend, "get_value")
                                 else value))
    except Exception:  # noqa: BLE001 (a schedule or an unknown optimizer: say the profile's)
        value = asked
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def evaluate_train_split(net, prepared, profile):
    """Accuracy and NLL over the training split in inference mode, computed here in numpy.

    Keras's own training figure is a running mean over the epoch's batches with
    dropout on, and each backend's Keras computes it in its own way (Keras
    2.3.1's CNTK backend reports one far above the others at the same loss);
    this one is the same model, the same images and the same arithmetic on every
    backend, so the seed's training-accuracy weights can be compared. Scores a
    seeded sample of at most ``TRAIN_EVAL_IMAGES`` training images (all of them
    when the split is smaller), the same rows on every backend.
    """
    labels = prepared.y["train"]
    n = len(labels)
    rows = np.arange(n)
    if n > TRAIN_EVAL_IMAGES:
        rows = np.sort(np.random.RandomState(profile["seed"]).choice(n, TRAIN_EVAL_IMAGES, replace=False))
    probs = model.predict(net, prepared.floats("train", rows), profile["predict_batch_size"])
    picked = np.clip(probs[np.arange(len(rows)), labels[rows]], 1e-12, 1.0)
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == labels[rows])),
            "loss": float(-np.mean(np.log(picked))), "images": int(len(rows)), "of": int(n),
            "seed": int(profile["seed"])}


def _channels_first(keras):
    return keras.backend.image_data_format() == "channels_first"


def _evaluate(keras, net, prepared, split, profile, n_classes):
    labels = model.one_hot(keras, prepared.y[split], n_classes)
    loss, accuracy = net.evaluate(prepared.floats(split), labels, batch_size=profile["predict_batch_size"],
                                  verbose=0)[:2]
    return float(loss), float(accuracy)


def _data_record(prepared, settings):
    return {
        "fingerprint": prepared.fingerprint,
        "source": settings["dataset"],
        "cache_key": prepared.key,
        "classes": prepared.classes,
        "sizes": {split: int(len(idx)) for split, idx in prepared.indices.items()},
        "image_shape": list(prepared.input_shape()),
    }
