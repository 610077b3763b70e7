"""What else the machine did while a section was timed: outside load, steal, throttling, pressure.

A figure timed "alone" (no other job of the run beside it) can still share
the machine with anything else: another user's processes, a CI runner's
neighbours, a busy hypervisor, a container's CPU quota. ``LoadMeter`` reads
the kernel's own counters before and after a timed section and says how
much of it was taken by others:

* CPU time used by processes other than this one, from ``/proc/stat`` (the
  machine's busy time) against this process's own CPU time
  (``/proc/self/stat``), in cores on average, on the whole machine and on the
  cores this job may run on (``/proc/stat``'s per-CPU lines);
* the hypervisor's steal time, as a share of the cores' time;
* inside a cgroup, CPU throttling (``cpu.stat``: ``nr_throttled``,
  ``throttled_usec`` or v1's ``throttled_time``) and CPU pressure
  (``cpu.pressure``, else ``/proc/pressure/cpu``: the share of the time some
  task waited for a CPU), where readable.

``judge`` turns a reading into a verdict: ``contended`` with how much, when
others used more than ``OTHERS_LIMIT_CORES`` of a core on average, the
hypervisor stole more than ``STEAL_LIMIT`` of the time, or the cgroup was
throttled at all. ``wait_for_quiet`` waits, up to a limit, until the outside
load has stayed under the limit for a few seconds; ``QuietWaits`` shares one
such limit among all the timed sections of a job.

Pure parsing functions take the files' text, so recorded samples test them.
Python 3.6 syntax and the standard library only: the job imports it.
"""
import os
import time

MIN_OTHERS_S = 0.05
"""Others' CPU time (and the hypervisor's steal) must also exceed this many seconds: /proc/stat counts in jiffies (10 ms at HZ 100), so on a
0.25 s section one jiffy of a kernel thread or of the harness polling reads as 0.04 of a core; a quiet
machine showed up to 3 jiffies in such sections (docs/methods.md), a busy core 25."""
OTHERS_LIMIT_CORES = 0.10
"""Outside load above this (cores used by other processes, on average over the section) marks a figure
contended: docs/methods.md says how it was chosen from quiet and loaded measurements."""
STEAL_LIMIT = 0.05
"""Steal above this share of the job's cores' time marks a figure contended (the hypervisor ran others)."""
DEFAULT_QUIET_WAIT_S = 30.0
"""How long a job waits, in all, for the machine to be quiet before its timed sections, beyond the
``QUIET_FOR_S`` each starts after, when its run.json does not say (``--quiet-wait``, under ``timing``)."""
QUIET_FOR_S = 3.0
"""Outside load must stay under the limit this long before a timed section starts;
``KBENCH_QUIET_FOR_S`` shortens it where only the plumbing matters (the test suite sets it)."""
SAMPLE_S = 0.5
MIN_SAMPLE_S = 0.05
"""The shortest wait for quiet: one sample this long (the test suite's, via ``KBENCH_QUIET_FOR_S``)."""
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")
"""/proc/stat columns that count as a CPU being busy (guest time is inside user)."""
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


# -- parsing (pure) -----------------------------------------------------------------------------
def parse_proc_stat(text):
    """``{"cpu": {...}, "cpu0": {...}, ...}``: each line's jiffies by field name."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu"):
            continue
        values = [int(v) for v in parts[1:1 + len(STAT_FIELDS)]]
        values += [0] * (len(STAT_FIELDS) - len(values))
        found[parts[0]] = dict(zip(STAT_FIELDS, values))
    return found


def parse_self_stat(text):
    """This process's CPU time in jiffies from ``/proc/self/stat``: its own (utime + stime) and that of its
    children it has waited for (cutime + cstime), so a compiler the backend runs (Theano's g++) is the job's
    own work, not outside load."""
    after = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return sum(int(after[i]) for i in (11, 12, 13, 14))  # fields 14-17: utime, stime, cutime, cstime


def parse_cgroup_cpu_stat(text):
    """``{"nr_throttled", "throttled_usec"}`` from a cgroup's ``cpu.stat`` (v2, or v1's nanoseconds)."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    if "throttled_usec" in values:
        usec = values["throttled_usec"]
    elif "throttled_time" in values:
        usec = values["throttled_time"] // 1000
    else:
        usec = None
    if "nr_throttled" not in values and usec is None:
        return None
    return {"nr_throttled": values.get("nr_throttled"), "throttled_usec": usec}


def parse_pressure(text):
    """The ``some`` line's ``total`` (microseconds some task waited for a CPU) from a pressure file."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "some":
            for part in parts[1:]:
                if part.startswith("total="):
                    return int(part[len("total="):])
    return None


def cgroup_paths(text, root="/sys/fs/cgroup"):
    """Where this process's cgroup ``cpu.stat`` and ``cpu.pressure`` may be, from ``/proc/self/cgroup``."""
    stats, pressures = [], []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1], parts[2].lstrip("/")
        if controllers == "":  # cgroup v2 (or v2 in a hybrid layout)
            for base in (root, os.path.join(root, "unified")):
                stats.append(os.path.join(base, path, "cpu.stat"))
                pressures.append(os.path.join(base, path, "cpu.pressure"))
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct"):
                stats.append(os.path.join(root, name, path, "cpu.stat"))
    pressures.append("/proc/pressure/cpu")
    return stats, pressures


# -- reading the machine -------------------------------------------------------------------------
def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _first(paths, parse):
    for path in paths:
        text = _read(path)
        if text is not None:
            value = parse(text)
            if value is not None:
                return path, value
    return None, None


def _own_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


class Snapshot(object):
    """The counters at one moment."""

    def __init__(self):
        self.wall = time.monotonic()
        self.stat = parse_proc_stat(_read("/proc/stat") or "")
        own = _read("/proc/self/stat")
        self.own_jiffies = parse_self_stat(own) if own else None
        stats, pressures = cgroup_paths(_read("/proc/self/cgroup") or "")
        self.cgroup_path, self.cgroup = _first(stats, parse_cgroup_cpu_stat)
        self.pressure_path, self.pressure = _first(pressures, parse_pressure)


def _busy(line):
    return sum(line.get(k, 0) for k in BUSY_FIELDS)


def _total(line):
    return sum(line.get(k, 0) for k in STAT_FIELDS)


def reading(before, after, cpus=None, hz=None):
    """What the machine did between two snapshots (see the module docstring), in cores and shares."""
    hz = hz or os.sysconf("SC_CLK_TCK")
    wall = max(after.wall - before.wall, 1e-9)
    cpus = cpus if cpus is not None else _own_cpus()
    out = {"seconds": round(wall, 3), "cpus": list(cpus)}
    if "cpu" not in before.stat or "cpu" not in after.stat:
        out["unreadable"] = "/proc/stat cannot be read"
        return out
    delta = dict((k, after.stat["cpu"][k] - before.stat["cpu"][k]) for k in STAT_FIELDS)
    busy_s = _busy(delta) / float(hz)
    own_s = ((after.own_jiffies - before.own_jiffies) / float(hz)
             if before.own_jiffies is not None and after.own_jiffies is not None else 0.0)
    out["own_cores"] = round(own_s / wall, 3)
    out["machine_busy_cores"] = round(busy_s / wall, 3)
    out["others_cores"] = round(max(0.0, busy_s - own_s) / wall, 3)
    own_lines = ["cpu%d" % c for c in cpus if "cpu%d" % c in before.stat and "cpu%d" % c in after.stat]
    if own_lines:
        own_busy = sum(_busy(after.stat[n]) - _busy(before.stat[n]) for n in own_lines) / float(hz)
        own_total = sum(_total(after.stat[n]) - _total(before.stat[n]) for n in own_lines)
        own_steal = sum(after.stat[n]["steal"] - before.stat[n]["steal"] for n in own_lines)
        out["others_on_own_cpus_cores"] = round(max(0.0, own_busy - own_s) / wall, 3)
        out["steal_share"] = round(own_steal / float(own_total), 4) if own_total > 0 else 0.0
    if before.cgroup is not None and after.cgroup is not None:
        throttled = dict((k, (after.cgroup[k] - before.cgroup[k])
                          if after.cgroup.get(k) is not None and before.cgroup.get(k) is not None else None)
                         for k in ("nr_throttled", "throttled_usec"))
        out["cgroup"] = dict(throttled, path=after.cgroup_path)
    if before.pressure is not None and after.pressure is not None:
        out["pressure_some_share"] = round((after.pressure - before.pressure) / (wall * 1e6), 4)
        out["pressure_path"] = after.pressure_path
    return out


def judge(measured):
    """``{"contended": bool, "reasons": [...]}`` for a reading: the rule in the module docstring."""
    reasons = []
    if measured.get("unreadable"):
        return {"contended": None, "reasons": [measured["unreadable"]]}
    others = measured.get("others_cores") or 0.0
    seconds = measured.get("seconds")
    others_s = others * seconds if seconds else float("inf")
    if others > OTHERS_LIMIT_CORES and others_s > MIN_OTHERS_S:
        reasons.append("other processes used %.2f of a core (limit %.2f)" % (others, OTHERS_LIMIT_CORES))
    steal = measured.get("steal_share") or 0.0
    steal_s = steal * seconds * max(1, len(measured.get("cpus") or ())) if seconds else float("inf")
    if steal > STEAL_LIMIT and steal_s > MIN_OTHERS_S:
        reasons.append("the hypervisor stole %.0f%% of the cores' time (limit %.0f%%)"
                       % (100 * steal, 100 * STEAL_LIMIT))
    cgroup = measured.get("cgroup") or {}
    if (cgroup.get("nr_throttled") or 0) > 0:
        reasons.append("the container was throttled %d time(s), %.2f s in all"
                       % (cgroup["nr_throttled"], (cgroup.get("throttled_usec") or 0) / 1e6))
    return {"contended": bool(reasons), "reasons": reasons}


class LoadMeter(object):
    """``with LoadMeter() as meter: ...`` then ``meter.result``: the reading and its verdict."""

    def __init__(self, cpus=None):
        self.cpus = cpus
        self.before = None
        self.result = None

    def __enter__(self):
        self.before = Snapshot()
        return self

    def __exit__(self, *exc):
        measured = reading(self.before, Snapshot(), self.cpus)
        measured.update(judge(measured))
        self.result = measured
        return False


def quiet_for_s_setting():
    """How long the machine must stay quiet before a timed section: ``QUIET_FOR_S``, or
    ``KBENCH_QUIET_FOR_S`` when set (at least one short sample)."""
    try:
        return max(MIN_SAMPLE_S, float(os.environ.get("KBENCH_QUIET_FOR_S", QUIET_FOR_S)))
    except ValueError:
        return QUIET_FOR_S


def wait_for_quiet(limit_s, quiet_for_s=None, sample_s=None, sleep=time.sleep):
    """Wait until outside load has stayed under the limit for ``quiet_for_s``, at most ``limit_s`` seconds.

    Samples last ``SAMPLE_S``, or ``quiet_for_s`` when that is shorter (the test suite's short waits).

    Returns ``{"waited_s", "quiet": bool, "last": reading}``: quiet False when the limit came first (the
    section is then timed anyway, and its own reading says whether it was contended).
    """
    quiet_for_s = quiet_for_s_setting() if quiet_for_s is None else quiet_for_s
    if sample_s is None:
        sample_s = max(MIN_SAMPLE_S, min(SAMPLE_S, quiet_for_s))
    started = time.monotonic()
    quiet_since = None
    last = None
    while True:
        before = Snapshot()
        sleep(sample_s)
        last = reading(before, Snapshot())
        now = time.monotonic()
        if judge(last)["contended"]:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now - sample_s
        if quiet_since is not None and now - quiet_since >= quiet_for_s:
            return {"waited_s": round(now - started, 2), "quiet": True, "last": last}
        if now - started >= limit_s:
            return {"waited_s": round(now - started, 2), "quiet": False, "last": last}


def quiet_wait_s(settings):
    """The run's limit on waiting for quiet (``--quiet-wait``, in run.json's ``timing``), in seconds;
    ``KBENCH_QUIET_WAIT_S`` lowers it where only the plumbing matters (the test suite sets it: its
    sessions run beside other tests, and their figures are never read as measurements)."""
    value = (settings.get("timing") or {}).get("quiet_wait_s")
    limit = float(DEFAULT_QUIET_WAIT_S if value is None else value)
    try:
        return min(limit, float(os.environ["KBENCH_QUIET_WAIT_S"]))
    except (KeyError, ValueError):
        return limit


class QuietWaits(object):
    """One job's waits for a quiet machine, sharing one limit (``--quiet-wait``).

    Each timed section first waits for ``quiet_for_s`` of quiet. Waiting beyond
    that comes out of the job's limit: once a busy machine has used it up,
    each later section still checks for ``quiet_for_s`` and is then timed (and
    marked contended if the machine is still busy). Measured on a busy core:
    a per-section limit made a smoke run's speed job wait out 10 sections
    (its 2 own and the ceiling's 8 kernels) and the whole run take 19 min
    against 8 quiet (docs/measurements.md 16).
    """

    def __init__(self, limit_s, quiet_for_s=None, wait=None):
        self.limit_s = float(limit_s)
        self.quiet_for_s = quiet_for_s_setting() if quiet_for_s is None else quiet_for_s
        self.spent_s = 0.0
        self._wait = wait or wait_for_quiet

    @property
    def left_s(self):
        return max(0.0, self.limit_s - self.spent_s)

    def wait(self):
        """Wait for quiet within what is left of the limit; ``wait_for_quiet``'s answer."""
        waited = self._wait(self.left_s + self.quiet_for_s, quiet_for_s=self.quiet_for_s)
        beyond = waited["waited_s"] - (self.quiet_for_s if waited["quiet"] else 0.0)
        self.spent_s += max(0.0, beyond)
        return waited


def waits_of(job):
    """The job's ``QuietWaits`` (one per job process), made on first use from its run.json."""
    waits = getattr(job, "quiet_waits", None)
    if waits is None:
        waits = job.quiet_waits = QuietWaits(quiet_wait_s(job.settings))
    return waits


def quiet_before(job, section):
    """Wait (within the job's limit) for a quiet machine before timing ``section``; say it when the
    wait ran out: the section is then timed anyway, and its reading says whether it was contended."""
    waits = waits_of(job)
    waited = waits.wait()
    if not waited["quiet"]:
        spent = "" if waits.left_s > 0 else "; this job's --quiet-wait of %.0f s is spent" % waits.limit_s
        job.say("the machine stayed busy for %.0f s (other processes used %.2f of a core); timing the %s "
                "anyway, marked contended if it still is%s" % (waited["waited_s"],
                                                                waited["last"].get("others_cores") or 0, section,
                                                                spent))
    return waited
