"""The speed regression gate: is a backend's training step slower than before, beyond noise?

A benchmark run's ``test_speed[<backend>]`` cases time many steady training
steps of each backend alone and record them, with the machine's float32 matmul
ceiling, in the pytest-benchmark JSON (``extra_info["speed"]``). The gate
compares two such documents backend by backend as distributions: the ratio of
median step times (candidate over base) with a bootstrap interval, and calls a
regression only when the whole interval lies above ``1 + threshold``. One noisy
step, or a change smaller than the threshold, never fails it.

Runs from different machines are compared in units of each machine's own
matmul rate (step time x ceiling GFLOP/s), so a slower machine is not a
regression; without a ceiling on one side, raw times are compared and the
verdict says so. Different thread counts are not compared at all. A side
timed while other processes used the machine (its ``contended`` reason,
from ``harness.workload.machine_load``) gives no verdict: the backend is
"busy", said with the reason, and never fails the gate.

It can also watch each backend's SingleStream p90 latency (``--watch p90``):
the ``test_serve[<backend>]`` cases record every query's latency
(``extra_info["serve"]["single_stream_latency_ms"]``); the gate takes the p90 of
each block of ``P90_BLOCK`` consecutive queries and compares those the same
way, as distributions, so one slow query or a drift of the machine does not
read as a regression of the tail.

``judge`` and the verdicts are pure; ``read_samples`` and ``latest_in_store``
read files (a pytest-benchmark JSON, a ``--benchmark-storage`` folder).
"""
from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import ResultError
from harness.scoring.intervals import DEFAULT_LEVEL, block_medians, ratio_of_medians
from harness.workload.layout import DEFAULT_MODEL

DEFAULT_THRESHOLD = 0.10
"""A backend regresses when its median step is surely more than 10% slower."""

SAME_CEILING = 0.05
"""Ceilings within 5% of each other are the same machine's, within the matmul benchmark's own noise."""

RAW_ACROSS_MACHINES = "raw times across machines"
"""How a verdict starts its caveat when it could not normalise two machines' times."""

SPEED_CASE = "test_speed["
SERVE_CASE = "test_serve["
NO_SPEED_DATA_FIX = "run pytest benchmarks/ with --benchmark-json from a version that has the speed phase"
NO_SERVE_DATA_FIX = "run pytest benchmarks/ with --benchmark-json from a version that has the serve phase"
WATCHES = ("steps", "p90")
"""What the gate can watch: each backend's training step times (test_speed), its SingleStream p90 (test_serve)."""
P90_BLOCK = 50
"""SingleStream queries per block of the p90 watch: each block's p90 is one measurement."""


MIN_QUIET_PROCESSES = 2
"""Of several processes per side (a confirmation), how many must have been timed on a quiet machine."""


class SpeedDataError(ResultError):
    """A benchmark JSON file that the gate cannot read speed samples from."""


@dataclass(frozen=True)
class SpeedSample:
    """One backend's steady training steps in one benchmark run, and where they were measured."""

    backend: str
    step_ms: list[float]
    ceiling_gflops: float | None
    """The machine's float32 matmul rate when the steps were timed."""
    threads: int | None
    machine: str | None
    contended: str | None = None
    """Why the steps were timed on a shared machine (other processes' CPU use, steal, throttling), or None."""
    measure: str = "median step time"
    """What the values are, for the verdict's words."""


@dataclass(frozen=True)
class GateVerdict:
    """One backend's median step time, candidate over base, and what it means."""

    backend: str
    state: str
    """``slower`` (a regression), ``faster``, ``unchanged``, ``busy`` (a side timed on a shared machine: no
    verdict), ``new``, ``gone`` or ``incomparable``."""
    ratio: float | None = None
    """Candidate's median step time over base's: above 1 is slower."""
    low: float | None = None
    high: float | None = None
    normalised: bool = False
    """True when each side's times were multiplied by its machine's matmul ceiling first."""
    basis: str = ""
    """How the two were compared and why (same machine, normalised, raw across machines)."""
    reason: str = ""
    """Why a backend was not compared (``new``, ``gone``, ``incomparable``)."""
    measure: str = "median step time"

    def line(self, threshold: float, level: float = DEFAULT_LEVEL) -> str:
        """``jax: 1.26x slower (95% interval 1.22-1.30x, threshold 10%): REGRESSION``, and so on."""
        if self.ratio is None or self.low is None or self.high is None:
            return f"{self.backend}: {self.state}: {self.reason}"
        interval = f"{level * 100:g}% interval"
        limit = f"threshold {threshold * 100:g}%"
        note = "".join(f"; {text}" for text in (
            "ceiling-normalised" if self.normalised else "",
            self.basis.partition(":")[0] if self.basis.startswith(RAW_ACROSS_MACHINES) else "") if text)
        if f"{self.ratio:.2f}" == "1.00":
            change = (f"the same {self.measure} (1.00x, {interval} {self.low:.2f}-{self.high:.2f}x, "
                      f"{limit}{note})")
        elif self.ratio > 1:
            change = f"{self.ratio:.2f}x slower ({interval} {self.low:.2f}-{self.high:.2f}x, {limit}{note})"
        else:
            change = (f"{1 / self.ratio:.2f}x faster ({interval} {1 / self.high:.2f}-{1 / self.low:.2f}x, "
                      f"{limit}{note})")
        if self.state == "slower":
            return f"{self.backend}: {change}: REGRESSION"
        if self.state == "faster":
            return f"{self.backend}: {change}"
        why = ("within noise" if self.low <= 1 <= self.high
               else f"not surely beyond the {threshold * 100:g}% threshold")
        return f"{self.backend}: {change}: unchanged, {why}"


@dataclass(frozen=True)
class GateReport:
    """Every backend's verdict; the gate fails when any backend is surely slower."""

    verdicts: tuple[GateVerdict, ...]
    threshold: float = DEFAULT_THRESHOLD
    level: float = DEFAULT_LEVEL

    @property
    def failed(self) -> bool:
        return any(verdict.state == "slower" for verdict in self.verdicts)

    def lines(self) -> list[str]:
        """One human line per backend, in backend order."""
        return [verdict.line(self.threshold, self.level) for verdict in self.verdicts]

    def summary(self) -> str:
        """One line: how many backends regressed, and whether raw or ceiling-normalised times were compared, and why."""
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            counts[verdict.state] = counts.get(verdict.state, 0) + 1
        tally = ", ".join(f"{count} {state}" for state, count in counts.items()) or "no backends"
        bases = list(dict.fromkeys(v.basis for v in self.verdicts if v.basis))
        how = "; ".join(bases) if bases else "nothing was compared"
        outcome = "REGRESSION" if self.failed else "no regression"
        return f"{outcome}: {tally}; {how}"


# -- comparing -----------------------------------------------------------------------------
def _differ(a: float, b: float) -> bool:
    return abs(a - b) > SAME_CEILING * min(a, b)


def _basis(base: SpeedSample, candidate: SpeedSample) -> tuple[bool, str]:
    """Whether to normalise by the ceilings, and the words for why."""
    what = "step times" if candidate.measure == SpeedSample.measure else "latencies"
    machines = (f"{base.machine} vs {candidate.machine}" if base.machine and candidate.machine
                and base.machine != candidate.machine else "")
    ceilings = (base.ceiling_gflops, candidate.ceiling_gflops)
    known = None not in ceilings
    ceiling_text = f"{ceilings[0]:.4g} vs {ceilings[1]:.4g} GFLOP/s" if known else ""
    if known and _differ(*ceilings):
        where = f"different machines ({machines}; " if machines else "different machines ("
        return True, (f"ceiling-normalised {what}: {where}float32 matmul ceilings {ceiling_text}, "
                      "more than 5% apart)")
    if machines:
        if known:
            return True, (f"ceiling-normalised {what}: different machines ({machines}; ceilings "
                          f"{ceiling_text})")
        return False, (f"{RAW_ACROSS_MACHINES} ({machines}): no float32 matmul ceiling on one side "
                       "to normalise by, so a slower machine reads as a slower backend")
    same = f"ceilings {ceiling_text}, within 5%" if known else "no ceilings recorded"
    return False, f"raw {what}: the same machine ({same})"


def compare_one(base: SpeedSample, candidate: SpeedSample, threshold: float = DEFAULT_THRESHOLD,
                level: float = DEFAULT_LEVEL) -> GateVerdict:
    """One backend measured in both runs: its verdict."""
    name = candidate.backend
    for side, sample in (("base", base), ("candidate", candidate)):
        if sample.contended:
            return GateVerdict(name, "busy", reason=(
                f"no verdict: the machine was busy while the {side} was timed ({sample.contended}); time it "
                "again on a quiet machine"))
    if base.threads is not None and candidate.threads is not None and base.threads != candidate.threads:
        return GateVerdict(name, "incomparable", reason=(
            f"measured with {base.threads} thread(s) in the base and {candidate.threads} in the candidate; "
            "rerun with the same --threads to compare"))
    for side, sample in (("base", base), ("candidate", candidate)):
        if len(sample.step_ms) < 2:
            return GateVerdict(name, "incomparable", reason=(
                f"the {side} has {len(sample.step_ms)} timed step(s); at least 2 are needed to see the noise"))
    normalised, basis = _basis(base, candidate)
    before, after = base.step_ms, candidate.step_ms
    if normalised:
        before = [ms * base.ceiling_gflops for ms in before]
        after = [ms * candidate.ceiling_gflops for ms in after]
    ratio, low, high = ratio_of_medians(block_medians(before), block_medians(after), level=level)
    if low > 1 + threshold:
        state = "slower"
    elif high < 1 / (1 + threshold):
        state = "faster"
    else:
        state = "unchanged"
    return GateVerdict(name, state, ratio=ratio, low=low, high=high, normalised=normalised, basis=basis,
                       measure=candidate.measure)


def judge(base: Mapping[str, SpeedSample], candidate: Mapping[str, SpeedSample],
            threshold: float = DEFAULT_THRESHOLD, level: float = DEFAULT_LEVEL) -> GateReport:
    """Every backend of either run: slower, faster, unchanged, new, gone or incomparable."""
    if not threshold > 0 or not math.isfinite(threshold):
        raise ValueError(f"the threshold must be a positive fraction (0.1 for 10%); got {threshold}")
    verdicts = []
    for name in sorted(set(base) | set(candidate)):
        if name not in base:
            verdicts.append(GateVerdict(name, "new", reason="only in the candidate; nothing to compare against"))
        elif name not in candidate:
            verdicts.append(GateVerdict(name, "gone", reason="only in the base; the candidate did not time it"))
        else:
            verdicts.append(replace(compare_one(base[name], candidate[name], threshold, level), backend=name))
    return GateReport(tuple(verdicts), threshold, level)


# -- reading pytest-benchmark JSON -----------------------------------------------------------
def _backend_of(benchmark: Mapping[str, Any]) -> str:
    """The parametrization id: ``param``, the one value of ``params``, or the text between brackets."""
    if isinstance(benchmark.get("param"), str) and benchmark["param"]:
        return benchmark["param"]
    params = benchmark.get("params")
    if isinstance(params, Mapping) and len(params) == 1:
        (value,) = params.values()
        if isinstance(value, str) and value:
            return value
    match = re.fullmatch(r"[^\[]*\[(.+)\]", str(benchmark.get("name", "")))
    return match.group(1) if match else str(benchmark.get("name"))


def _case_key(benchmark: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    """The backend, with the model beside it unless it is the seed's CNN: ``jax``, ``jax (resnet-small)``.

    Cases of several models (``test_speed[resnet-small-jax]``) carry the backend
    in ``params``; a case from before models were pluggable timed the seed's CNN.
    """
    params = benchmark.get("params")
    backend = params.get("backend_name") if isinstance(params, Mapping) else None
    backend = backend if isinstance(backend, str) and backend else _backend_of(benchmark)
    model = extra.get("model")
    return backend if not isinstance(model, str) or model in ("", DEFAULT_MODEL) else f"{backend} ({model})"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


LONGEST_MS = 1e9
"""No step or query takes eleven days: a longer time is a damaged file, and such times (1e308 ms) overflow the
bootstrap's sums to infinity."""


def _time_ms(value: Any) -> bool:
    return _number(value) and 0 < value <= LONGEST_MS


def _sample(name: str, backend: str, speed: Any, source: str) -> SpeedSample:
    where = f"{name} in {source}: extra_info.speed"
    if not isinstance(speed, Mapping):
        raise SpeedDataError(f"{where} is not an object; {NO_SPEED_DATA_FIX}")
    steps = speed.get("train_step_ms")
    if not isinstance(steps, list) or not steps or not all(_time_ms(v) for v in steps):
        raise SpeedDataError(f"{where}.train_step_ms must be a non-empty list of positive step times in ms (up "
                             f"to {LONGEST_MS:g}); "
                             f"the file is damaged or from another version: {NO_SPEED_DATA_FIX}")
    ceiling = speed.get("ceiling_gflops")
    threads = speed.get("threads")
    machine = speed.get("machine")
    contended = speed.get("contended")
    if contended is not None and not isinstance(contended, str):
        raise SpeedDataError(f"{where}.contended must be text (why) or absent; got {contended!r}")
    if ceiling is not None and not (_number(ceiling) and ceiling > 0):
        raise SpeedDataError(f"{where}.ceiling_gflops must be a positive number or absent; got {ceiling!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise SpeedDataError(f"{where}.threads must be a positive whole number or absent; got {threads!r}")
    if machine is not None and not isinstance(machine, str):
        raise SpeedDataError(f"{where}.machine must be text or absent; got {machine!r}")
    return SpeedSample(backend, [float(v) for v in steps], float(ceiling) if ceiling is not None else None,
                       threads, machine, contended or None)


def p90_blocks(latency_ms: list[float], block: int = P90_BLOCK) -> list[float]:
    """The p90 (LoadGen's index: sorted at ``int(n * 0.9)``) of each run of ``block`` consecutive queries;
    with fewer than 3 blocks, every latency (the median of those is then compared)."""
    blocks = [sorted(latency_ms[i:i + block]) for i in range(0, len(latency_ms) - block + 1, block)]
    if len(blocks) < 3:
        return list(latency_ms)
    return [b[int(len(b) * 0.9)] for b in blocks]


def _serve_sample(name: str, key: str, serve: Any, source: str) -> SpeedSample:
    where = f"{name} in {source}: extra_info.serve"
    latency = serve.get("single_stream_latency_ms") if isinstance(serve, Mapping) else None
    if not isinstance(latency, list) or not latency or not all(_time_ms(v) for v in latency):
        raise SpeedDataError(f"{where}.single_stream_latency_ms must be a non-empty list of positive latencies in "
                             f"ms (up to {LONGEST_MS:g}); the file is damaged or from another version: {NO_SERVE_DATA_FIX}")
    threads = serve.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise SpeedDataError(f"{where}.threads must be a positive whole number or absent; got {threads!r}")
    return SpeedSample(key, p90_blocks([float(v) for v in latency]), None, threads, None,
                       measure=f"SingleStream p90 (of blocks of {P90_BLOCK} queries)")


def samples_from_benchmark_json(data: Any, source: str = "the document",
                                watch: tuple[str, ...] = ("steps",)) -> dict[str, SpeedSample]:
    """Each backend's samples from a pytest-benchmark JSON document (``json.load`` of the file).

    ``steps``: the ``test_speed[...]`` cases' step times, keyed by backend;
    ``p90``: the ``test_serve[...]`` cases' SingleStream latencies as block p90s,
    keyed ``<backend> SingleStream p90``. A case without its figures is
    skipped. A document that is not pytest-benchmark's raises ``SpeedDataError``.
    """
    unknown = sorted(set(watch) - set(WATCHES))
    if unknown:
        raise SpeedDataError(f"the gate cannot watch {', '.join(unknown)}; choose from {', '.join(WATCHES)}")
    benchmarks = data.get("benchmarks") if isinstance(data, Mapping) else None
    if not isinstance(benchmarks, list):
        raise SpeedDataError(f"{source} is not a pytest-benchmark JSON document (no 'benchmarks' list); give "
                             "the file that pytest --benchmark-json wrote or --benchmark-autosave saved")
    samples: dict[str, SpeedSample] = {}
    for benchmark in benchmarks:
        if not isinstance(benchmark, Mapping):
            raise SpeedDataError(f"{source} has a benchmark entry that is not an object; the file is damaged: "
                                 "run the benchmark again with --benchmark-json")
        name = str(benchmark.get("name", ""))
        extra = benchmark.get("extra_info")
        if not isinstance(extra, Mapping):
            continue
        if "steps" in watch and name.startswith(SPEED_CASE) and "speed" in extra:
            key, kind = _case_key(benchmark, extra), "speed"
            found = _sample(name, key, extra["speed"], source)
        elif "p90" in watch and name.startswith(SERVE_CASE) and "serve" in extra:
            key, kind = f"{_case_key(benchmark, extra)} SingleStream p90", "serve"
            found = _serve_sample(name, key, extra["serve"], source)
        else:
            continue
        if key in samples:
            raise SpeedDataError(f"{source} holds two {kind} cases for {key}; give the JSON of one benchmark run")
        samples[key] = found
    return samples


def fastest_process(runs: list[Mapping[str, SpeedSample]]) -> dict[str, SpeedSample]:
    """Per backend, the sample of the process with the shortest median step: best of N processes.

    One process's steps are steady (its interval is about 1% wide), but two
    processes of the same code on this kind of machine differ by up to 1.6x
    (TensorFlow: 540-778 img/s over 9 processes), as if each drew a fast or a
    slow placement at start-up. Comparing one process per side then flags a
    slow draw as a regression. The fastest of several processes per side
    compares like with like: a real slowdown moves every process, the fastest
    too. Only processes timed on a quiet machine count. Of several processes,
    when fewer than ``MIN_QUIET_PROCESSES`` were timed on a quiet machine the
    best of them is one draw again, not a confirmation: the sample is then
    marked busy, with why, so the gate gives no verdict rather than judging
    one pair. (Seen here: with another engineer's tests on the other core,
    3 of 4 processes per side were busy and the one quiet pair differed 1.26x
    for a documentation-only change.)
    """
    best: dict[str, SpeedSample] = {}
    quiet: dict[str, int] = {}
    seen: dict[str, int] = {}
    for run in runs:
        for key, sample in run.items():
            seen[key] = seen.get(key, 0) + 1
            quiet[key] = quiet.get(key, 0) + (not sample.contended)
            known = best.get(key)
            if known is None or (bool(sample.contended), statistics.median(sample.step_ms)) < (
                    bool(known.contended), statistics.median(known.step_ms)):
                best[key] = sample
    for key, sample in best.items():
        if seen[key] > 1 and 0 < quiet[key] < MIN_QUIET_PROCESSES:
            best[key] = replace(sample, contended=(
                f"only {quiet[key]} of its {seen[key]} processes was timed on a quiet machine, too few to "
                f"confirm (at least {MIN_QUIET_PROCESSES})"))
    return best


def read_samples(path: Path, watch: tuple[str, ...] = ("steps",)) -> dict[str, SpeedSample]:
    """The samples ``watch`` asks for in a pytest-benchmark JSON file; a missing, unreadable or empty file raises."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpeedDataError(f"no file {path}; give the JSON file that pytest --benchmark-json wrote (the base "
                             "may also be a --benchmark-storage folder)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpeedDataError(f"cannot read {path} ({err}); give a pytest-benchmark JSON file") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpeedDataError(f"{path} is not JSON ({err.msg} at line {err.lineno}); give the file that "
                             "pytest --benchmark-json wrote") from None
    samples = samples_from_benchmark_json(data, str(path), watch)
    if not samples:
        asked = " or ".join({"steps": "test_speed cases with speed data", "p90": "test_serve cases with serving "
                              "data"}[w] for w in watch)
        fix = NO_SPEED_DATA_FIX if "steps" in watch else NO_SERVE_DATA_FIX
        raise SpeedDataError(f"no {asked} in {path}; {fix}")
    return samples


def _store_order(path: Path) -> tuple[int, float]:
    match = re.match(r"(\d+)_", path.name)
    return (int(match.group(1)) if match else -1, path.stat().st_mtime)


def latest_in_store(folder: Path, exclude: Path | None = None) -> Path | None:
    """The newest ``*.json`` in a pytest-benchmark storage folder (``<store>/<machine-id>/<NNNN>_*.json``).

    Newest by the run counter pytest-benchmark prefixes, then by modification
    time; ``exclude`` (the candidate, when it was saved into the same store) is
    skipped. None when the store holds nothing else.
    """
    skip = Path(exclude).resolve() if exclude is not None else None
    files = [path for path in Path(folder).rglob("*.json") if path.is_file() and path.resolve() != skip]
    return max(files, key=_store_order) if files else None
