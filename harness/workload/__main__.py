"""``python -m harness.workload train|predict|fidelity|speed|serve --shared DIR --run-id ID --backend NAME``

Exit status: 0 done, 1 crashed, 2 bad usage, 3 bad input (retrying cannot
help). On failure the last line on standard error starts with ``kbench-error:``
and says what went wrong in one line.
"""
import time

STARTED = time.time()  # before any heavy import: start-up time is measured from here

import argparse  # noqa: E402
import errno  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

DATA_FORMAT = {"cntk": "channels_first"}
"""Memory layout per backend, where it differs from channels_last. Measured on a 2-core
CPU: CNTK 2.7 trains about 15% faster in its native channels_first; Theano and the
Keras 3 backends are as fast or faster with channels_last."""


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m harness.workload",
                                     description="Train, predict, check the fidelity of, time or serve one "
                                                 "Keras backend of a benchmark run.")
    parser.add_argument("phase", choices=("train", "predict", "fidelity", "speed", "serve"))
    parser.add_argument("--shared", required=True, help="the shared folder that holds runs/ and cache/")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--backend", required=True)
    return parser.parse_args(argv)


def _import_keras(backend):
    from harness.workload import compat
    from harness.workload.job import JobError

    wanted = os.environ.get("KERAS_BACKEND")
    if wanted and wanted != backend:
        raise JobError("KERAS_BACKEND=%s but the job is for %s; let the harness set the environment"
                       % (wanted, backend))
    os.environ["KERAS_BACKEND"] = backend
    compat.apply()
    import keras

    if keras.backend.backend() != backend:
        raise JobError("keras %s loaded backend %r instead of %r; install %s in this environment"
                       % (getattr(keras, "__version__", "?"), keras.backend.backend(), backend, backend))
    from harness.workload import environment

    try:
        keras.backend.set_image_data_format(environment.data_format(DATA_FORMAT.get(backend, "channels_last")))
    except ValueError as err:
        raise JobError(str(err))

    environment.apply_threads(backend)
    return keras


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    from harness.workload import data, environment, events, faults, layout, model
    from harness.workload.job import Job, JobError, InputError

    job = None
    try:
        job = Job(args.shared, args.run_id, args.backend, args.phase, STARTED)
        job.events.emit(events.START, pid=os.getpid())
        faults.maybe_fail(args.backend, args.phase, "start")
        keras = _import_keras(args.backend)
        if args.phase == "train":
            from harness.workload import train as phase
        elif args.phase == "fidelity":
            from harness.workload import fidelity as phase
        elif args.phase == "speed":
            from harness.workload import speed as phase
        elif args.phase == "serve":
            from harness.workload import serve as phase
        else:
            from harness.workload import predict as phase
        result = phase.run(job, keras)
        if "gpu_memory" not in result and environment.on_gpu():  # speed reads it before its ceiling
            result["gpu_memory"] = environment.gpu_memory(args.backend)
        # checksums last, of the files as written: resume reuses the job only while they match
        result["files"] = layout.file_records(job.dir, layout.promised_files(args.phase, result))
        result_path = job.path(layout.result_name(args.phase))
        layout.atomic_write_json(result_path, result)
        job.events.emit(events.DONE, seconds=round(job.elapsed(), 3))
        faults.maybe_fail(args.backend, args.phase, "end", result_path)
        return 0
    except (JobError, data.DataError, model.ModelError) as err:
        code = err.exit_code if isinstance(err, JobError) else InputError.exit_code
        return _fail(job, str(err), code)
    except KeyboardInterrupt:
        return _fail(job, "interrupted", 130)
    except (IOError, OSError) as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            traceback.print_exc()
            return _fail(job, "%s: %s" % (type(err).__name__, err), 1)
        return _fail(job, "the shared folder is full (%s); free some space, then run again with --run-id %s to "
                          "resume" % (err.strerror, args.run_id), 1)
    except MemoryError:
        traceback.print_exc()
        return _fail(job, "out of memory (MemoryError); give the job more memory or use a smaller profile", 1)
    except Exception as err:
        traceback.print_exc()
        return _fail(job, "%s: %s" % (type(err).__name__, err), 1)


def _fail(job, message, code):
    message = " ".join(str(message).split())
    if job is not None:
        from harness.workload import events

        job.events.emit(events.ERROR, message=message, exit_code=code)
    sys.stdout.flush()
    from harness.workload.layout import ERROR_PREFIX

    sys.stderr.write(ERROR_PREFIX + message + "\n")
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
