"""Step and epoch timing that separates warm-up (tracing, compilation) from steady state."""
import time

from harness.workload import events

WARMUP_STEPS = 3
STEP_EVENT_EVERY_S = 2.0


class StepTimer(object):
    """A Keras callback that times every training step and emits progress events.

    Reading the loss forces asynchronous backends (JAX) to finish the step, so
    step times are real compute, not dispatch.
    """

    def __init__(self, keras, log, epoch, steps, batch_size, slowdown=1.0):
        self.log = log
        self.slowdown = slowdown
        """A fault mode (``faults.slowdown``): each step is stretched to this many times its time."""
        self.epoch = epoch
        self.steps = steps
        self.batch_size = batch_size
        self.ends = []
        self.begin = None
        self._last_event = 0.0
        timer = self

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if timer.begin is None:
                    timer.begin = time.perf_counter()

            def on_batch_begin(self, batch, logs=None):  # Keras 2.3.1 name
                self.on_train_batch_begin(batch, logs)

            def on_train_batch_end(self, batch, logs=None):
                timer.step_end(batch, logs or {})

            def on_batch_end(self, batch, logs=None):  # Keras 2.3.1 name
                timer.step_end(batch, logs or {})

        self.callback = _Callback()

    def step_end(self, batch, logs):
        loss = logs.get("loss")
        try:
            loss = float(loss) if loss is not None else None
        except (TypeError, ValueError):
            loss = None
        now = time.perf_counter()
        if self.ends and self.ends[-1][0] == batch:
            return  # Keras 2 calls both on_batch_end and on_train_batch_end
        if self.slowdown > 1.0:
            previous = self.ends[-1][1] if self.ends else self.begin
            time.sleep((self.slowdown - 1.0) * (now - previous))
            now = time.perf_counter()
        self.ends.append((batch, now))
        if now - self._last_event >= STEP_EVENT_EVERY_S or batch + 1 == self.steps:
            self._last_event = now
            done = len(self.ends)
            elapsed = now - self.begin if self.begin else None
            rate = round(done * self.batch_size / elapsed, 1) if elapsed else None
            self.log.emit(events.STEP, epoch=self.epoch, step=done, steps=self.steps,
                          images_per_s=rate, loss=loss)

    def step_seconds(self):
        """Seconds of each step, the first measured from the start of the epoch."""
        times = [self.begin] + [t for _, t in self.ends] if self.begin is not None else []
        return [b - a for a, b in zip(times, times[1:])]


def steady_rate(history, timers):
    """Images per second once warmed up.

    With two or more epochs: images over wall time of every epoch after the
    first (the first holds compilation). With one epoch: from the step times,
    leaving out the first ``WARMUP_STEPS`` steps; an epoch of fewer steps
    than that leaves out only the first (which holds compilation), and
    ``steady_basis`` says so. None only for an epoch of a single step.
    """
    if len(history) >= 2:
        images = sum(h["images"] for h in history[1:])
        seconds = sum(h["seconds"] for h in history[1:])
        return round(images / seconds, 2) if seconds > 0 else None
    later = _later_steps(timers)
    if not later or sum(later) <= 0:
        return None
    batch = timers[0].batch_size
    return round(batch * len(later) / sum(later), 2)


def steady_basis(history, timers):
    """What ``steady_rate`` measured over, in a few words for the report and the job's result."""
    if len(history) >= 2:
        return "epochs after the first"
    steps = timers[0].step_seconds() if timers else []
    later = _later_steps(timers)
    if not later:
        return ("none: the only epoch had %d step(s), and a rate needs at least 2 (the first holds compilation); "
                "train on more images (n_train) or for 2 epochs" % len(steps))
    if len(steps) > WARMUP_STEPS:
        return "steps after the first %d of the only epoch" % WARMUP_STEPS
    return ("the %d step(s) after the first of the only epoch (fewer than %d warm-up steps: may include warm-up)"
            % (len(later), WARMUP_STEPS))


def _later_steps(timers):
    """The step times of a single epoch after its warm-up (after the first step only, for a short epoch)."""
    steps = timers[0].step_seconds() if timers else []
    return steps[WARMUP_STEPS:] if len(steps) > WARMUP_STEPS else steps[1:]


def summarise_epochs(history, timers):
    first_steps = timers[0].step_seconds() if timers else []
    steady = steady_rate(history, timers)
    first_epoch_s = history[0]["seconds"] if history else None
    warmup_s = None
    if steady and first_epoch_s is not None:
        warmup_s = round(max(0.0, first_epoch_s - history[0]["images"] / steady), 3)
    return {
        "epoch_seconds": [h["seconds"] for h in history],
        "first_epoch_s": first_epoch_s,
        "first_step_s": round(first_steps[0], 4) if first_steps else None,
        "warmup_s": warmup_s,
        "train_seconds": round(sum(h["seconds"] for h in history), 3),
    }


def percentiles(values, points=(50, 90, 99)):
    import numpy as np

    if not values:
        return {}
    arr = np.asarray(values, dtype=float) * 1000.0
    out = {"p%d_ms" % p: round(float(np.percentile(arr, p)), 3) for p in points}
    out["mean_ms"] = round(float(arr.mean()), 3)
    out["max_ms"] = round(float(arr.max()), 3)
    return out
