"""``serve``: inference as it is served, in MLPerf LoadGen's scenarios, with a sample of every answer kept.

The job loads the backend's trained weights (as ``predict`` does) and runs,
alone on the machine (its phase runs ``alone``, as ``speed`` does), the three
scenarios of MLPerf Inference's load generator (mlcommons/inference,
``loadgen/``), each a timed section:

* **SingleStream**: one image per query, each issued when the previous one was
  answered, until both the profile's duration and query count are reached
  (LoadGen's ``min_duration`` and ``min_query_count``: both must be met);
* **Offline**: every query available at once, answered in batches, at each
  batch size of ``OFFLINE_BATCHES`` up to the profile's largest (a batch that
  does not fit in memory ends the sweep, and says so);
* **Server**: queries arriving as a seeded Poisson process at an offered rate
  (LoadGen's ``ScheduleDistribution<Server>``: exponential gaps), answered one
  at a time in order of arrival, each query's latency measured from its
  arrival, so time spent queueing counts; the highest rate whose p99 stays
  within the profile's bound is searched for as LoadGen's FindPeakPerformance
  does (``find_peak``), within a number of trials.

The first query of each scenario (which may trace or compile the model for a
new shape) is timed apart from the steady ones, and so is the time from the
job's start to its first answer. Of every timed run a seeded sample of the
answers (at least ``AUDIT_LEAST`` images, or ``AUDIT_SHARE`` of them) is kept
in ``serve_audit.npz``: the harness compares them with the predict job's
probabilities for the same images (LoadGen's TEST01 audit), so a backend that
answers fast but wrongly cannot pass.

The harness judges the numbers by LoadGen's rules (``harness.scoring.loadgen_rules``);
this module only measures. Each timed section runs through ``timed``, the
one place a measurement of outside load could wrap.
"""
import math
import os
import time

import numpy as np

from harness.workload import data, environment, events, faults, layout, machine_load, model
from harness.workload.job import InputError

OFFLINE_BATCHES = (1, 8, 32, 128, 512)
"""Batch sizes of the Offline sweep, up to the profile's ``serve_max_batch``."""
AUDIT_LEAST = 32
"""Answers kept of every timed run for the audit, at least (all of them when fewer)..."""
AUDIT_SHARE = 0.01
"""... or this share of them, whichever is more."""
SERVER_PERCENTILE = 0.99
"""The Server's latency percentile (LoadGen ``test_settings.h``: ``server_target_latency_percentile``)."""
FIRST_RATE_SHARE = 0.5
"""The Server search's first offered rate, as a share of the SingleStream rate (1 / mean latency).
LoadGen takes its first rate from the user; a backend answering one query at a time cannot
sustain the SingleStream rate, so half of it is a rate most backends meet."""
PEAK_DECIMALS = 1
"""The search ends once the rate is known to this many decimals (LoadGen ``test_settings.h``:
``server_find_peak_qps_decimals_of_precision = 1``), or at the profile's trial limit."""
PEAK_STEP = 1.0
"""Each widening multiplies the rate by ``1 + PEAK_STEP`` (``server_find_peak_qps_boundary_step_size = 1``)."""
SEED_OFFSETS = {"samples": 101, "offline": 202, "schedule": 303, "audit": 404}
"""Added to the profile's seed for each random choice, so each has its own stream."""
OUT_OF_MEMORY = ("out of memory", "resourceexhausted", "oom", "cannot allocate memory", "bad_alloc")


def run(job, keras):
    profile = job.profile
    settings = serving_settings(profile)
    if settings["seconds"] <= 0:
        raise InputError("profile %s has serve_seconds %r: no serve phase to run" % (profile["name"],
                                                                                      settings["seconds"]))
    weights_path = job.path(layout.WEIGHTS)
    if not os.path.isfile(weights_path):
        raise InputError("no trained weights at %s; run the train phase for %s first" % (weights_path, job.backend))
    t = time.time()
    arrays = data.load(job.settings["dataset"], job.shared, job.cache_dir, say=job.say)
    prepared = data.prepare(arrays, profile, splits=("test",),
                            channels_first=keras.backend.image_data_format() == "channels_first")
    images = prepared.floats("test")
    data_s = time.time() - t
    job.events.emit(events.DATA_LOADED, seconds=round(data_s, 3), n_test=len(images))

    t = time.time()
    model_path = model.job_model_path(job)
    net = model.build(keras, prepared.input_shape(), len(prepared.classes), profile["learning_rate"],
                      path=model_path)
    try:
        model.load_weights(net, job.backend, weights_path)
    except (OSError, ValueError, KeyError) as err:
        raise InputError("weights %s do not fit the model (%s); run the train phase again" % (weights_path, err))
    load_s = time.time() - t
    job.events.emit(events.MODEL_READY, seconds=round(load_s, 3), startup_s=round(job.elapsed(), 3))

    fault = faults.serving_fault(job.backend, "serve")
    answer = faults.serving_answers(job.backend, "serve", answerer(net))
    seed = int(profile["seed"])
    samples = Samples(len(images), seed + SEED_OFFSETS["samples"])
    kept = {}

    first_answer = []
    single = timed(job, "single-stream", single_stream, answer, images, samples, settings["seconds"],
                   settings["min_queries"], on_first=lambda: first_answer.append(round(job.elapsed(), 3)),
                   quiet_first=True)
    kept["single_stream"] = _audited(single, seed, 0)
    job.events.emit(events.SERVED, scenario="single-stream", queries=len(single["latency_s"]),
                    p90_ms=round(1000.0 * _plain_percentile(single["latency_s"], 0.90), 3))

    order = np.random.RandomState(seed + SEED_OFFSETS["offline"]).permutation(len(images))
    pool = images[order]
    sweep, stopped = [], None
    for i, batch in enumerate(b for b in OFFLINE_BATCHES if b <= settings["max_batch"]):
        try:
            measured = timed(job, "offline", offline, answer, pool, order, batch, settings["sweep_seconds"],
                             settings["min_queries"], section_fields={"batch": batch}, quiet_first=i == 0)
        except Exception as err:  # noqa: BLE001 (only memory errors are caught; the rest go on)
            if not out_of_memory(err):
                raise
            stopped = "batch %d did not fit in memory (%s: %s)" % (batch, type(err).__name__,
                                                                   " ".join(str(err).split())[:200])
            break
        kept["offline_b%d" % batch] = _audited(measured, seed, 10 + i)
        sweep.append(_without_outputs(measured, batch=batch))
    best = max(sweep, key=lambda row: row["images"] / sum(row["batch_s"])) if sweep else None
    job.events.emit(events.SERVED, scenario="offline", batches=[row["batch"] for row in sweep],
                    best_batch=best["batch"] if best else None)

    bound_s = settings["p99_bound_ms"] / 1000.0
    trials = []

    def trial(rate):
        arrivals = poisson_schedule(rate, settings["sweep_seconds"], settings["min_queries"],
                                    seed + SEED_OFFSETS["schedule"])
        measured = timed(job, "server", server, answer, images, samples, arrivals, bound_s,
                         section_fields={"rate": round(rate, 3)}, quiet_first=not trials)
        kept["server_t%d" % len(trials)] = _audited(measured, seed, 100 + len(trials))
        trials.append(_without_outputs(measured, rate=rate))
        return measured["passed"]

    first_rate = FIRST_RATE_SHARE / (sum(single["latency_s"]) / len(single["latency_s"]))
    search = find_peak(trial, first_rate, settings["rate_trials"])
    job.events.emit(events.SERVED, scenario="server", peak_rate=search["peak_rate"], trials=len(trials))

    audit = {}
    for run_name, (rows, probs, of) in sorted(kept.items()):
        audit[run_name + "__rows"] = np.asarray(rows, dtype=np.int64)
        audit[run_name + "__probs"] = np.asarray(probs, dtype=np.float32)
    layout.atomic_save_named_npz(job.path(layout.SERVE_AUDIT), audit)
    return {
        "schema": layout.SCHEMA_VERSION,
        "kind": "serve",
        "run_id": job.run_id,
        "backend": job.backend,
        "data": {"fingerprint": prepared.fingerprint, "source": job.settings["dataset"], "cache_key": prepared.key,
                 "classes": prepared.classes, "sizes": {"test": int(len(images))}},
        "environment": environment.describe(keras, job.backend),
        "model": model.describe(job, model_path),
        "settings": dict(settings, threads=environment.requested_threads() or 1, seed=seed,
                         offline_batches=[b for b in OFFLINE_BATCHES if b <= settings["max_batch"]],
                         server_percentile=SERVER_PERCENTILE, first_rate_share=FIRST_RATE_SHARE,
                         peak_decimals=PEAK_DECIMALS, peak_step=PEAK_STEP, audit_least=AUDIT_LEAST,
                         audit_share=AUDIT_SHARE),
        "single_stream": _without_outputs(single),
        "offline": {"batches": sweep, "stopped": stopped},
        "server": {"bound_s": bound_s, "first_rate": first_rate, "trials": trials, "search": search},
        "first_answer_s": first_answer[0],
        "audit": {"file": layout.SERVE_AUDIT,
                  "runs": {name: {"images": len(rows), "of": of} for name, (rows, _, of) in sorted(kept.items())}},
        "fault": fault,
        "timing": {"data_load_s": round(data_s, 3), "model_load_s": round(load_s, 3),
                   "total_s": round(job.elapsed(), 3)},
        "peak_rss_mb": environment.peak_rss_mb(),
        "cpu": environment.cpu_use(job.elapsed()),
    }


def serving_settings(profile):
    """The profile's serving fields (a run.json written before they existed has none: no serve phase)."""
    return {"seconds": float(profile.get("serve_seconds") or 0.0),
            "sweep_seconds": float(profile.get("serve_sweep_seconds") or 1.0),
            "min_queries": int(profile.get("serve_min_queries") or 100),
            "max_batch": int(profile.get("serve_max_batch") or OFFLINE_BATCHES[-1]),
            "rate_trials": int(profile.get("serve_rate_trials") or 8),
            "p99_bound_ms": float(profile.get("serve_p99_bound_ms") or 15.0)}


def answerer(net):
    """The backend answering a query: softmax outputs of a batch of images, as numpy float32 (which
    waits for an asynchronous backend to finish)."""
    def answer(images):
        return np.asarray(net.predict_on_batch(images), dtype=np.float32)
    return answer


def timed(job, section, function, *args, **kwargs):
    """``function(*args)`` as one timed section, between TIMED_START and TIMED_END events, with the
    machine's outside load read around it (``machine_load``: its reading is the result's ``load``).

    The isolation rule (no other job of the run runs meanwhile) is checked
    against these events, as for the speed phase's sections. With
    ``quiet_first`` the section starts once the machine has been quiet for a few
    seconds (waiting at most the run's limit, as the speed phase does).
    """
    fields = kwargs.pop("section_fields", {})
    if kwargs.pop("quiet_first", False):
        machine_load.quiet_before(job, section)
    job.events.emit(events.TIMED_START, section=section, **fields)
    try:
        with machine_load.LoadMeter() as meter:
            measured = function(*args, **kwargs)
    finally:
        job.events.emit(events.TIMED_END, section=section, **fields)
    if isinstance(measured, dict):
        measured["load"] = meter.result
    return measured


class Samples(object):
    """LoadGen's performance-mode sample order: each query's image drawn uniformly, with replacement,
    from a seeded stream (``loadgen.cc``: ``SampleDistribution<TestMode::PerformanceOnly>``)."""

    CHUNK = 4096

    def __init__(self, n_images, seed):
        if n_images < 1:
            raise InputError("the profile holds no test images to serve")
        self._rng = np.random.RandomState(seed)
        self._n = n_images
        self._drawn = np.zeros(0, dtype=np.int64)

    def __getitem__(self, i):
        while i >= len(self._drawn):
            self._drawn = np.concatenate([self._drawn, self._rng.randint(0, self._n, self.CHUNK)])
        return int(self._drawn[i])


# -- the scenarios -------------------------------------------------------------------------------
def single_stream(answer, images, samples, min_seconds, min_queries, clock=time.perf_counter, on_first=None):
    """SingleStream: one image a query, each issued once the previous one is answered.

    The first query (which may trace or compile the model for one image) is
    timed apart. The run then goes on until the last query was issued at least
    ``min_seconds`` after the first timed one and ``min_queries`` were answered
    (LoadGen: the run lasts until both are met; its duration is the final
    query's issue time). ``on_first`` is called once the first query is answered.
    """
    row = samples[0]
    started = clock()
    answer(images[row:row + 1])
    first_s = clock() - started
    if on_first is not None:
        on_first()
    latencies, rows, outputs = [], [], []
    start = clock()
    issued = done = start
    i = 1
    while True:
        row = samples[i]
        issued = clock()
        out = answer(images[row:row + 1])
        done = clock()
        latencies.append(done - issued)
        rows.append(row)
        outputs.append(out[0])
        i += 1
        if issued - start >= min_seconds and len(latencies) >= min_queries:
            break
    return {"latency_s": latencies, "duration_s": issued - start, "wall_s": done - start,
            "first_query_s": first_s, "rows": rows, "outputs": outputs}


def offline(answer, pool, order, batch, min_seconds, min_images, clock=time.perf_counter):
    """Offline at one batch size: every query there at once, answered ``batch`` images at a time.

    ``pool`` holds the test images in the seeded ``order``, cycled as needed
    (LoadGen repeats its loaded samples to fill an Offline query); a batch is a
    slice of it, so no copy is timed. The first batch (a new shape, perhaps
    traced or compiled) is timed apart; then batches until ``min_seconds`` of
    answering and ``min_images`` images.
    """
    n = len(pool)

    def rows_of(k):
        start = (k * batch) % n
        if start + batch <= n:
            return np.arange(start, start + batch), pool[start:start + batch]
        positions = np.arange(start, start + batch) % n
        return positions, pool[positions]

    _, x = rows_of(0)
    started = clock()
    answer(x)
    first_s = clock() - started
    batch_s, rows, outputs = [], [], []
    k, answering = 1, 0.0
    start = clock()
    while True:
        positions, x = rows_of(k)
        t = clock()
        out = answer(x)
        batch_s.append(clock() - t)
        answering += batch_s[-1]
        rows.extend(int(order[p]) for p in positions)
        outputs.extend(out)
        k += 1
        if answering >= min_seconds and len(rows) >= min_images:
            break
    return {"batch_s": batch_s, "images": len(rows), "wall_s": clock() - start, "first_query_s": first_s,
            "rows": rows, "outputs": outputs}


def poisson_schedule(rate, seconds, min_queries, seed):
    """Arrival times of a Server run, LoadGen's way (``loadgen.cc``: ``GenerateQueries`` with
    ``ScheduleDistribution<TestScenario::Server>``): the first query at 0, each next one an
    exponential gap of mean ``1 / rate`` later, until a query is scheduled at or after ``seconds``
    and at least ``min_queries`` are. Gaps are unit exponential draws divided by the rate, so every
    rate of a search gets the same draws, scaled."""
    if not rate > 0:
        raise ValueError("the offered rate must be above 0, not %r" % (rate,))
    rng = np.random.RandomState(seed)
    times, previous, now = [], 0.0, 0.0
    while previous < seconds or len(times) < min_queries:
        times.append(now)
        previous = now
        now += rng.exponential(1.0) / rate
    return np.asarray(times)


def server(answer, images, samples, arrivals, bound_s, clock=time.perf_counter, sleep=time.sleep):
    """Server at one offered rate: each query arrives at its scheduled time and is answered in order.

    One query is answered at a time; one that arrives while another is being
    answered waits, and its latency, measured from its arrival, includes the
    wait. The run stops early once more queries went over ``bound_s`` than
    its p99 allows (the verdict cannot change: the rate fails).
    """
    n = len(arrivals)
    allowed_over = n - int(n * SERVER_PERCENTILE) - 1
    latencies, rows, outputs = [], [], []
    over = 0
    start = clock()
    first_s = None
    for i in range(n):
        due = start + float(arrivals[i])
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        row = samples[i]
        out = answer(images[row:row + 1])
        done = clock()
        latency = done - due
        if first_s is None:
            first_s = latency
        latencies.append(latency)
        rows.append(row)
        outputs.append(out[0])
        if latency > bound_s:
            over += 1
            if over > allowed_over:
                break
    return {"latency_s": latencies, "queries": n, "answered": len(latencies), "scheduled_s": float(arrivals[-1]),
            "stopped_early": len(latencies) < n, "passed": over <= allowed_over, "over_bound": over,
            "first_query_s": first_s, "wall_s": clock() - start, "rows": rows, "outputs": outputs}


def is_finished(low, high, decimals=PEAK_DECIMALS):
    """LoadGen's end of the search (``test_settings_internal.h``: ``find_peak_performance::IsFinished``,
    Server): the bounds agree to ``decimals`` decimals."""
    scale = 10 ** decimals
    return math.floor(low * scale) + 1 >= math.floor(high * scale)


def find_peak(trial, first_rate, max_trials, decimals=PEAK_DECIMALS, step=PEAK_STEP):
    """The highest offered rate ``trial(rate)`` passes at, LoadGen's way, in at most ``max_trials`` trials.

    LoadGen's FindPeakPerformance (``loadgen.cc``: ``FindPeakPerformanceMode``,
    ``FindBoundaries``, ``FindPeakPerformanceBinarySearch``): from a lower bound
    that passes, widen the rate by ``1 + step`` until one fails; then bisect
    between the last pass and the first failure until ``is_finished``. LoadGen
    takes the lower bound from the user and stops when it fails; here the first
    rate is halved until one passes. Returns the peak (the highest rate that
    passed; None if none did), the lowest that failed above it (None if none
    did), and whether the search ended by LoadGen's rule or at the trial limit.
    """
    if max_trials < 1:
        raise ValueError("the search needs at least one trial, not %r" % (max_trials,))
    tried = []

    def attempt(rate):
        passed = bool(trial(rate))
        tried.append({"rate": rate, "passed": passed})
        return passed

    low = high = None
    rate = float(first_rate)
    while len(tried) < max_trials:
        if attempt(rate):
            low = rate
            break
        high = rate
        rate /= 2.0
    while low is not None and high is None and len(tried) < max_trials:
        rate = low * (1.0 + step)
        if attempt(rate):
            low = rate
        else:
            high = rate
    while low is not None and high is not None and not is_finished(low, high, decimals) \
            and len(tried) < max_trials:
        middle = low + (high - low) / 2.0
        if attempt(middle):
            low = middle
        else:
            high = middle
    finished = low is not None and high is not None and is_finished(low, high, decimals)
    return {"peak_rate": low, "failed_rate": high, "finished": finished, "tried": tried,
            "max_trials": max_trials, "decimals": decimals, "step": step}


# -- keeping answers for the audit -----------------------------------------------------------------
def audit_positions(n, seed):
    """A seeded sample of ``max(AUDIT_LEAST, AUDIT_SHARE * n)`` of a run's ``n`` answers (all when fewer),
    chosen without looking at them, in order."""
    k = min(n, max(AUDIT_LEAST, int(math.ceil(AUDIT_SHARE * n))))
    return np.sort(np.random.RandomState(seed).choice(n, k, replace=False)) if k else np.zeros(0, dtype=np.int64)


def _audited(measured, seed, offset):
    positions = audit_positions(len(measured["rows"]), seed + SEED_OFFSETS["audit"] + offset)
    rows = [measured["rows"][p] for p in positions]
    probs = np.stack([measured["outputs"][p] for p in positions]) if len(positions) else np.zeros((0, 0))
    return rows, probs, len(measured["rows"])


def _without_outputs(measured, **fields):
    """What the result file keeps of a timed run: its times, not its answers (those go to the audit)."""
    out = {k: v for k, v in measured.items() if k not in ("rows", "outputs")}
    for key in ("latency_s", "batch_s"):
        if key in out:
            out[key] = [round(float(s), 7) for s in out[key]]
    out.update(fields)
    return out


def _plain_percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def out_of_memory(err):
    """Whether an error says the batch did not fit in memory (MemoryError, or a backend's own words)."""
    if isinstance(err, MemoryError):
        return True
    text = ("%s %s" % (type(err).__name__, err)).lower()
    return any(words in text for words in OUT_OF_MEMORY)
