"""A job function for the driver's worker processes that dies like an OOM-killed worker on
the instance named ``killer`` (imported by name in spawned workers; see test_faults.py)."""

import os
import signal


def run_job_or_die(job, outputs, seed, journal):
    from deepsdf_preprocess.driver import _run_job

    if job.instance == "killer":
        os.kill(os.getpid(), signal.SIGKILL)
    return _run_job(job, outputs, seed, journal)
