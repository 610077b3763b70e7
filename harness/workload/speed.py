"""``speed``: time steady training steps and inference batches of one backend, alone on the machine.

The harness runs this job by itself (its phase runs ``alone`` in the harness's phase table): no other
job of the run starts while it runs, and it starts only once none is running,
so its times are the backend's own, not what was left over beside another
job. Every backend is timed the same way, at the same thread count:

* training: ``SPEED_WARMUP_STEPS`` steps of ``fit`` (tracing, compilation),
  then ``speed_steps`` steps in ``SEGMENTS`` separate ``fit`` calls (segments),
  each step timed by the same callback the train phase uses (which reads the
  loss, so asynchronous backends finish the step); the model is the run's,
  from the run's seed. A backend whose speed falls into modes (a fast and a
  slow state that a process keeps for a while) shows them as segments of
  different speed, instead of one mode drawn by chance;
* inference: one warm-up batch, then ``speed_predict_batches`` batches of
  ``predict_on_batch``, each timed;
* the ceiling (``ceiling.measure``): this backend's kernels, once per machine.

Before the timed sections the job waits, up to the run's limit, until nothing
else has used the machine for a few seconds (``machine_load.wait_for_quiet``),
and it reads what else the machine did during each segment and section
(``machine_load.LoadMeter``): a figure timed beside other work is marked
contended, with how much, instead of passing for the backend's own.

The result keeps every step's time, so the harness can give a median, an
interquartile range and a bootstrap interval, and compare distributions.
"""
import time

import numpy as np

from harness.workload import ceiling, data, environment, events, faults, flops, layout, machine_load, model
from harness.workload.timing import StepTimer

SPEED_WARMUP_STEPS = 5
DEFAULT_PREDICT_BATCHES = 20
SEGMENTS = 6
"""Separate ``fit`` calls the timed training steps are split into (fewer when the steps are few)."""
MIN_SEGMENT_STEPS = 5


def segment_sizes(steps, segments=SEGMENTS, least=MIN_SEGMENT_STEPS):
    """``steps`` shared out over at most ``segments`` segments of at least ``least`` steps each."""
    count = max(1, min(segments, steps // least))
    return [steps // count + (1 if i < steps % count else 0) for i in range(count)]




def _cycled(n_available, n_wanted, seed):
    """``n_wanted`` row numbers: a seeded order of the available rows, repeated as needed."""
    order = np.random.RandomState(seed).permutation(n_available)
    reps = int(np.ceil(n_wanted / float(n_available)))
    return np.tile(order, reps)[:n_wanted]


def run(job, keras):
    profile = job.profile
    steps = int(profile.get("speed_steps") or 0)
    if steps < 1:
        from harness.workload.job import InputError

        raise InputError("profile %s has speed_steps %r: no speed phase to run" % (profile["name"], steps))
    t = time.time()
    arrays = data.load(job.settings["dataset"], job.shared, job.cache_dir, say=job.say)
    prepared = data.prepare(arrays, profile, splits=("train", "test"),
                            channels_first=keras.backend.image_data_format() == "channels_first")
    data_s = time.time() - t
    job.events.emit(events.DATA_LOADED, seconds=round(data_s, 3), n_train=len(prepared.y["train"]))

    np.random.seed(profile["seed"])
    model_path = model.job_model_path(job)
    net = model.build(keras, prepared.input_shape(), len(prepared.classes), profile["learning_rate"],
                      path=model_path)
    cost = flops.per_image(net, prepared.input_shape(), keras.backend.image_data_format())
    job.events.emit(events.MODEL_READY, startup_s=round(job.elapsed(), 3), parameters=int(net.count_params()))
    batch = profile["batch_size"]
    n_classes = len(prepared.classes)
    rows = _cycled(len(prepared.y["train"]), (SPEED_WARMUP_STEPS + steps) * batch, profile["seed"])
    x = prepared.floats("train", rows)
    y = model.one_hot(keras, prepared.y["train"][rows], n_classes)
    warm = SPEED_WARMUP_STEPS * batch

    t = time.perf_counter()
    net.fit(x[:warm], y[:warm], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    warmup_s = time.perf_counter() - t
    slowdown = faults.slowdown(job.backend, "speed")
    quiet = {"train": machine_load.quiet_before(job, "training steps")}
    job.events.emit(events.TIMED_START, section="train", steps=steps)
    step_s, segments, start = [], [], warm
    with machine_load.LoadMeter() as train_load:
        for size in segment_sizes(steps):
            timer = StepTimer(keras, job.events, 1, size, batch, slowdown=slowdown)
            end = start + size * batch
            with machine_load.LoadMeter() as load:
                net.fit(x[start:end], y[start:end], batch_size=batch, epochs=1, shuffle=False, verbose=0,
                        callbacks=[timer.callback])
            segments.append({"first_step": len(step_s), "steps": size, "load": load.result})
            step_s += timer.step_seconds()
            start = end
    job.events.emit(events.TIMED_END, section="train")

    predict_batch = profile["predict_batch_size"]
    n_batches = int(profile.get("speed_predict_batches") or DEFAULT_PREDICT_BATCHES)
    test_rows = _cycled(len(prepared.y["test"]), (n_batches + 1) * predict_batch, profile["seed"])
    x_test = prepared.floats("test", test_rows)
    np.asarray(net.predict_on_batch(x_test[:predict_batch]))
    quiet["predict"] = machine_load.quiet_before(job, "inference batches")
    job.events.emit(events.TIMED_START, section="predict", batches=n_batches)
    batch_s = []
    with machine_load.LoadMeter() as predict_load:
        for i in range(1, n_batches + 1):
            start = time.perf_counter()
            np.asarray(net.predict_on_batch(x_test[i * predict_batch:(i + 1) * predict_batch]))
            batch_s.append(time.perf_counter() - start)
    job.events.emit(events.TIMED_END, section="predict")

    threads = environment.requested_threads() or 1
    gpu_memory = environment.gpu_memory(job.backend)  # the model's, before the ceiling's big matrices
    rates = ceiling.measure(job.backend, threads, job.cache_dir, say=job.say,
                            wait=machine_load.waits_of(job).wait)
    return {
        "schema": layout.SCHEMA_VERSION,
        "kind": "speed",
        "run_id": job.run_id,
        "backend": job.backend,
        "environment": environment.describe(keras, job.backend),
        "model": model.describe(job, model_path),
        "settings": {"batch_size": batch, "predict_batch_size": predict_batch, "steps": steps,
                     "warmup_steps": SPEED_WARMUP_STEPS, "predict_batches": n_batches, "threads": threads,
                     "slowdown": slowdown if slowdown != 1.0 else None},
        "train": {"step_s": [round(s, 6) for s in step_s], "warmup_s": round(warmup_s, 4),
                  "images_per_step": batch, "segments": segments},
        "load": {"train": train_load.result, "predict": predict_load.result,
                 "quiet_wait": dict((k, {"waited_s": v["waited_s"], "quiet": v["quiet"]}) for k, v in quiet.items()),
                 "limits": {"others_cores": machine_load.OTHERS_LIMIT_CORES,
                            "steal_share": machine_load.STEAL_LIMIT}},
        "predict": {"batch_s": [round(s, 6) for s in batch_s], "images_per_batch": predict_batch},
        "flops": cost,
        "ceiling": rates,
        "peak_rss_mb": environment.peak_rss_mb(),
        "gpu_memory": gpu_memory,
        "cpu": environment.cpu_use(job.elapsed()),
        "timing": {"data_load_s": round(data_s, 3), "total_s": round(job.elapsed(), 3)},
    }
