"""``predict``: load the trained weights and write softmax outputs with timings.

Inference is timed batch by batch after one warm-up batch (which includes
tracing and compilation), giving images per second and latency percentiles.
"""
import os
import time

import numpy as np

from harness.workload import data, environment, events, flops, layout, model
from harness.workload.job import InputError
from harness.workload.timing import percentiles


def run(job, keras):
    profile = job.profile
    weights_path = job.path(layout.WEIGHTS)
    if not os.path.isfile(weights_path):
        raise InputError("no trained weights at %s; run the train phase for %s first"
                         % (weights_path, job.backend))
    t = time.time()
    arrays = data.load(job.settings["dataset"], job.shared, job.cache_dir, say=job.say)
    prepared = data.prepare(arrays, profile, splits=("val", "test"),
                            channels_first=keras.backend.image_data_format() == "channels_first")
    data_s = time.time() - t
    job.events.emit(events.DATA_LOADED, seconds=round(data_s, 3), n_val=len(prepared.y["val"]),
                    n_test=len(prepared.y["test"]))

    t = time.time()
    model_path = model.job_model_path(job)
    net = model.build(keras, prepared.input_shape(), len(prepared.classes), profile["learning_rate"],
                      path=model_path)
    try:
        model.load_weights(net, job.backend, weights_path)
    except (OSError, ValueError, KeyError) as err:
        raise InputError("weights %s do not fit the model (%s); run the train phase again" % (weights_path, err))
    load_s = time.time() - t
    cost = flops.per_image(net, prepared.input_shape(), keras.backend.image_data_format())
    startup_s = job.elapsed()
    job.events.emit(events.MODEL_READY, seconds=round(load_s, 3), startup_s=round(startup_s, 3))

    batch = profile["predict_batch_size"]
    x_test = prepared.floats("test")
    t = time.perf_counter()
    np.asarray(net.predict_on_batch(x_test[:batch]))
    warmup_s = time.perf_counter() - t

    latencies, outputs = [], []
    for start in range(0, len(x_test), batch):
        t = time.perf_counter()
        out = np.asarray(net.predict_on_batch(x_test[start:start + batch]), dtype=np.float32)
        latencies.append(time.perf_counter() - t)
        outputs.append(out)
    probs_test = np.concatenate(outputs)
    infer_s = sum(latencies)
    job.events.emit(events.PREDICTED, split="test", images=len(x_test),
                    images_per_s=round(len(x_test) / infer_s, 1))

    splits = {"test": probs_test}
    if len(prepared.y["val"]):
        splits["val"] = model.predict(net, prepared.floats("val"), batch)
    for split, probs in splits.items():
        layout.atomic_save_npy(job.path(layout.probs_name(split)), probs)
        layout.atomic_save_npy(job.path(layout.labels_name(split)), prepared.y[split].astype(np.int64))

    labels = prepared.y["test"]
    picked = np.clip(probs_test[np.arange(len(labels)), labels], 1e-12, 1.0)
    return {
        "schema": layout.SCHEMA_VERSION,
        "kind": "predict",
        "run_id": job.run_id,
        "backend": job.backend,
        "data": {"fingerprint": prepared.fingerprint, "source": job.settings["dataset"],
                 "cache_key": prepared.key, "classes": prepared.classes,
                 "sizes": {s: int(len(i)) for s, i in prepared.indices.items()}},
        "environment": environment.describe(keras, job.backend),
        "model": model.describe(job, model_path),
        "outputs": {split: {"probs": layout.probs_name(split), "labels": layout.labels_name(split),
                            "rows": int(len(probs)),
                            "columns": int(probs.shape[1])} for split, probs in splits.items()},
        "test": {"accuracy": float(np.mean(probs_test.argmax(axis=1) == labels)),
                 "loss": float(-np.mean(np.log(picked)))},
        "timing": dict(
            percentiles(latencies),
            startup_s=round(startup_s, 3),
            data_load_s=round(data_s, 3),
            model_load_s=round(load_s, 3),
            warmup_s=round(warmup_s, 4),
            batch_size=batch,
            batches=len(latencies),
            inference_s=round(infer_s, 4),
            images_per_s=round(len(x_test) / infer_s, 2),
            total_s=round(job.elapsed(), 3),
        ),
        "flops": cost,
        "peak_rss_mb": environment.peak_rss_mb(),
        "cpu": environment.cpu_use(job.elapsed()),
    }

