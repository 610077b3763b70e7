"""Outside load during a timed section: the kernel's counters parsed, judged, and read for real.

The parsing is checked on recorded samples of each file (``/proc/stat``,
``/proc/self/stat``, cgroup v1 and v2 ``cpu.stat``, pressure files); the
judgement on readings made from them; and the meter itself against a real
busy loop pinned to the measuring process's core.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from harness.workload import machine_load
from harness.workload.machine_load import (
    LoadMeter,
    QuietWaits,
    Snapshot,
    cgroup_paths,
    judge,
    parse_cgroup_cpu_stat,
    parse_pressure,
    parse_proc_stat,
    parse_self_stat,
    reading,
    wait_for_quiet,
)

PROC_STAT = """cpu  525259 23 45692 337287 2908 0 951 618 0 0
cpu0 236032 11 20589 198057 922 0 255 295 0 0
cpu1 289227 11 25102 139230 1985 0 696 323 0 0
intr 123 0 0
ctxt 999
"""


def test_proc_stat_is_read_per_cpu_and_in_total():
    parsed = parse_proc_stat(PROC_STAT)
    assert sorted(parsed) == ["cpu", "cpu0", "cpu1"]
    assert parsed["cpu"] == {"user": 525259, "nice": 23, "system": 45692, "idle": 337287, "iowait": 2908,
                             "irq": 0, "softirq": 951, "steal": 618}


def test_a_process_name_with_spaces_and_parentheses_does_not_shift_the_fields():
    text = "4242 (tf (odd) name) R 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 3 0"
    assert parse_self_stat(text) == 175  # utime 150 + stime 25


def test_the_jobs_own_children_are_its_own_work_not_outside_load():
    """Theano compiles with g++ in a child process: seen in a quiet smoke run as 0.48 of a core of 'outside'
    load during its first SingleStream queries. A child the job has waited for is in cutime and cstime."""
    text = "4242 (python) R 1 2 3 4 5 6 7 8 9 10 150 25 40 8 20 0 3 0"
    assert parse_self_stat(text) == 150 + 25 + 40 + 8


def test_a_few_jiffies_in_a_short_section_are_not_contention_a_busy_core_is():
    """/proc/stat counts in 10 ms jiffies: in a 0.25 s Offline batch of a quiet smoke run, 3 jiffies of the
    harness polling or a kernel thread read as 0.12 of a core; a busy loop there would read 25 jiffies."""
    assert judge({"seconds": 0.256, "others_cores": 0.117})["contended"] is False  # 30 ms: quantisation
    assert judge({"seconds": 0.256, "others_cores": 0.9})["contended"] is True
    assert judge({"seconds": 5.0, "others_cores": 0.12})["contended"] is True  # 0.6 s over a long section
    assert judge({"others_cores": 0.12})["contended"] is True  # a reading without its duration: the rate alone
    # steal is counted in the same jiffies: 4 of them in a 0.24 s Server trial of a quiet run read as 17%
    assert judge({"seconds": 0.236, "cpus": [0], "steal_share": 0.174})["contended"] is False
    assert judge({"seconds": 5.0, "cpus": [0], "steal_share": 0.08})["contended"] is True


@pytest.mark.parametrize("text, expected", [
    ("usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 40\nnr_throttled 3\nthrottled_usec 250000\n",
     {"nr_throttled": 3, "throttled_usec": 250000}),  # cgroup v2
    ("nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
     {"nr_throttled": 0, "throttled_usec": 0}),  # cgroup v1 (nanoseconds), as on this machine
    ("nr_periods 5\nnr_throttled 2\nthrottled_time 3000000\n", {"nr_throttled": 2, "throttled_usec": 3000}),
    ("usage_usec 10\n", None),  # no throttling counters: nothing to say
])
def test_cgroup_cpu_stat_v1_and_v2(text, expected):
    assert parse_cgroup_cpu_stat(text) == expected


def test_pressure_reads_the_some_total():
    text = "some avg10=91.30 avg60=44.95 avg300=26.52 total=957474953\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    assert parse_pressure(text) == 957474953
    assert parse_pressure("") is None


def test_cgroup_files_are_found_for_v1_v2_and_hybrid_layouts():
    stats, pressures = cgroup_paths("12:cpu,cpuacct:/docker/abc\n0::/docker/abc\n", root="/cg")
    assert "/cg/cpu,cpuacct/docker/abc/cpu.stat" in stats and "/cg/docker/abc/cpu.stat" in stats
    assert "/cg/unified/docker/abc/cpu.stat" in stats
    assert pressures[0] == "/cg/docker/abc/cpu.pressure" and pressures[-1] == "/proc/pressure/cpu"


def snapshot(wall: float, cpu0_busy: int, cpu1_busy: int, own: int, steal: int = 0, throttled=None,
             pressure=None) -> Snapshot:
    """A recorded moment: per-CPU busy jiffies (user), steal, this process's jiffies, cgroup counters."""
    snap = Snapshot.__new__(Snapshot)
    lines = {"cpu0": cpu0_busy, "cpu1": cpu1_busy}
    stolen = {"cpu0": steal, "cpu1": 0}
    snap.stat = {name: {"user": busy, "nice": 0, "system": 0, "idle": int(100 * wall) - busy - stolen[name],
                        "iowait": 0, "irq": 0, "softirq": 0, "steal": stolen[name]} for name, busy in lines.items()}
    snap.stat["cpu"] = {k: sum(snap.stat[n][k] for n in lines) for k in snap.stat["cpu0"]}
    snap.wall, snap.own_jiffies = wall, own
    snap.cgroup_path, snap.cgroup = ("/cg/cpu.stat", throttled) if throttled else (None, None)
    snap.pressure_path, snap.pressure = ("/proc/pressure/cpu", pressure) if pressure is not None else (None, None)
    return snap


def test_a_quiet_section_is_the_job_alone():
    """10 s at 100 Hz: the job used its core (990 jiffies), others 5 jiffies on the whole machine."""
    measured = reading(snapshot(0, 1000, 500, 200), snapshot(10, 1990, 505, 1190), cpus=[0], hz=100)
    assert measured["own_cores"] == 0.99 and measured["others_cores"] == 0.005
    assert measured["others_on_own_cpus_cores"] == 0.0
    assert judge(measured) == {"contended": False, "reasons": []}


def test_another_process_on_the_jobs_core_is_contended_with_how_much():
    """The factor-two mode: the job got half its core (500 jiffies), another process the other half."""
    measured = reading(snapshot(0, 1000, 500, 200), snapshot(10, 2000, 500, 700), cpus=[0], hz=100)
    assert measured["own_cores"] == 0.5 and measured["others_on_own_cpus_cores"] == 0.5
    assert judge(measured) == {"contended": True,
                               "reasons": ["other processes used 0.50 of a core (limit 0.10)"]}


def test_steal_and_throttling_are_contention_even_when_nothing_else_ran_here():
    stolen = reading(snapshot(0, 1000, 0, 0, steal=0), snapshot(10, 1900, 0, 900, steal=100), cpus=[0], hz=100)
    assert stolen["steal_share"] == 0.1  # 100 of cpu0's 1,000 jiffies
    assert judge(stolen)["reasons"] == ["the hypervisor stole 10% of the cores' time (limit 5%)"]
    throttled = reading(snapshot(0, 0, 0, 0, throttled={"nr_throttled": 10, "throttled_usec": 1_000_000},
                                 pressure=0),
                        snapshot(10, 900, 0, 900, throttled={"nr_throttled": 14, "throttled_usec": 1_500_000},
                                 pressure=2_000_000), cpus=[0], hz=100)
    assert throttled["cgroup"]["nr_throttled"] == 4 and throttled["pressure_some_share"] == 0.2
    assert judge(throttled)["reasons"] == ["the container was throttled 4 time(s), 0.50 s in all"]


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.fixture
def pinned():
    """This process on one core, as a speed job is; its affinity restored afterwards."""
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    yield core
    os.sched_setaffinity(0, before)


def test_a_busy_loop_on_the_jobs_core_is_measured_and_marked(pinned):
    """A real stand-in load: another process spinning on the core this (pinned) process times on."""
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {pinned}))  # noqa: PLW1509
    try:
        time.sleep(0.3)
        with LoadMeter() as meter:
            _spin(2.0)
    finally:
        loop.kill()
        loop.wait()
    measured = meter.result
    assert measured["others_on_own_cpus_cores"] > 0.3, measured
    assert measured["contended"] and measured["reasons"][0].startswith("other processes used")


@pytest.mark.slow  # waits up to 8 s for the machine to be quiet
def test_a_quiet_machine_is_not_marked(pinned):
    """Waits (up to 8 s) for the machine to be quiet first: on a machine others are using, it says so."""
    waited = wait_for_quiet(8, quiet_for_s=machine_load.QUIET_FOR_S)
    if not waited["quiet"]:
        pytest.skip(f"the machine stayed busy (others used {waited['last']['others_cores']:.2f} of a core): "
                    "the quiet case cannot be shown now")
    with LoadMeter() as meter:
        _spin(1.0)
    assert meter.result["own_cores"] > 0.8
    assert not meter.result["contended"], meter.result


def test_waiting_for_quiet_gives_up_at_its_limit_and_says_so(pinned):
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        started = time.monotonic()
        waited = wait_for_quiet(1.5, quiet_for_s=1.0)
    finally:
        loop.kill()
        loop.wait()
    assert waited["quiet"] is False and 1.5 <= waited["waited_s"] < 3.0
    assert time.monotonic() - started < 3.5
    assert waited["last"]["others_cores"] > machine_load.OTHERS_LIMIT_CORES


def test_the_quiet_period_is_three_seconds_unless_the_test_suite_shortens_it(monkeypatch):
    monkeypatch.delenv("KBENCH_QUIET_FOR_S", raising=False)
    assert machine_load.quiet_for_s_setting() == 3.0
    monkeypatch.setenv("KBENCH_QUIET_FOR_S", "0")
    assert machine_load.quiet_for_s_setting() == machine_load.MIN_SAMPLE_S  # one short sample at least
    monkeypatch.setenv("KBENCH_QUIET_FOR_S", "soon")
    assert machine_load.quiet_for_s_setting() == 3.0


class BusyFor:
    """``wait_for_quiet`` on a machine that stays busy for ``busy_s`` of waiting, then is quiet: no clock, no
    load, the waits' arithmetic alone."""

    def __init__(self, busy_s: float):
        self.busy_left_s = busy_s
        self.limits: list[float] = []

    def __call__(self, limit_s: float, quiet_for_s: float) -> dict:
        self.limits.append(limit_s)
        if self.busy_left_s + quiet_for_s <= limit_s:
            waited, self.busy_left_s = self.busy_left_s + quiet_for_s, 0.0
            return {"waited_s": waited, "quiet": True, "last": {"others_cores": 0.0}}
        self.busy_left_s -= limit_s
        return {"waited_s": limit_s, "quiet": False, "last": {"others_cores": 1.0}}


def test_a_job_waits_for_quiet_at_most_its_limit_in_all_not_per_section():
    """A busy machine made a smoke run's speed job wait the whole limit before each of its 10 timed
    sections (its own 2 and the ceiling's 8 kernels): 19 min for a run that takes 8 quiet."""
    machine = BusyFor(busy_s=1000)
    waits = QuietWaits(30, quiet_for_s=3, wait=machine)
    answers = [waits.wait() for _ in range(10)]
    assert [a["quiet"] for a in answers] == [False] * 10
    assert machine.limits == [33] + [3] * 9, "the first wait spends the limit; the rest check for quiet only"
    assert sum(a["waited_s"] for a in answers) == 33 + 9 * 3


def test_on_a_quiet_machine_each_section_still_gets_its_quiet_period():
    machine = BusyFor(busy_s=0)
    waits = QuietWaits(30, quiet_for_s=3, wait=machine)
    for _ in range(12):
        assert waits.wait()["quiet"]
    assert machine.limits == [33] * 12 and waits.spent_s == 0


def test_a_short_busy_spell_uses_only_what_it_took():
    machine = BusyFor(busy_s=10)
    waits = QuietWaits(30, quiet_for_s=3, wait=machine)
    assert waits.wait() == {"waited_s": 13, "quiet": True, "last": {"others_cores": 0.0}}
    assert waits.left_s == 20 and machine.limits == [33]
    waits.wait()
    assert machine.limits == [33, 23]


def test_a_job_says_once_its_wait_is_spent_and_still_times_each_section():
    said = []
    job = SimpleNamespace(settings={"timing": {"quiet_wait_s": 30}}, say=said.append)
    job.quiet_waits = QuietWaits(30, quiet_for_s=3, wait=BusyFor(busy_s=1000))
    machine_load.quiet_before(job, "training steps")
    machine_load.quiet_before(job, "inference batches")
    assert said == [
        ("the machine stayed busy for 33 s (other processes used 1.00 of a core); timing the training steps anyway, "
        "marked contended if it still is; this job's --quiet-wait of 30 s is spent"),
        ("the machine stayed busy for 3 s (other processes used 1.00 of a core); timing the inference batches "
        "anyway, marked contended if it still is; this job's --quiet-wait of 30 s is spent")]


def test_each_job_has_one_budget_made_from_its_run_json(monkeypatch):
    monkeypatch.delenv("KBENCH_QUIET_WAIT_S", raising=False)
    job = SimpleNamespace(settings={"timing": {"quiet_wait_s": 7}})
    assert machine_load.waits_of(job) is machine_load.waits_of(job)
    assert machine_load.waits_of(job).limit_s == 7


def test_the_suite_can_lower_the_wait_for_quiet_but_never_raise_it(monkeypatch):
    monkeypatch.setenv("KBENCH_QUIET_WAIT_S", "2")
    assert machine_load.quiet_wait_s({"timing": {"quiet_wait_s": 30}}) == 2
    assert machine_load.quiet_wait_s({"timing": {"quiet_wait_s": 1}}) == 1
    monkeypatch.setenv("KBENCH_QUIET_WAIT_S", "later")
    assert machine_load.quiet_wait_s({"timing": {"quiet_wait_s": 30}}) == 30
    monkeypatch.delenv("KBENCH_QUIET_WAIT_S")
    assert machine_load.quiet_wait_s({}) == machine_load.DEFAULT_QUIET_WAIT_S
