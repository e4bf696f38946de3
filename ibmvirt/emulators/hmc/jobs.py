"""Asynchronous HMC jobs (``/api/jobs/{id}``) that complete on timers.

Why: the real HMC answers Start/Stop Partition (and a few other operations) with
202 and a job URI; clients poll "Query Job Status" and then delete the job. The
faked HMC in zhmcclient.mock only runs operations synchronously, so the emulator
keeps its own job table. Jobs finish after the configured operation delay; with a
delay of 0 they are complete before the 202 is sent, so zhmcclient's first poll
sees ``complete`` and never sleeps (it sleeps a hard-coded 10 s between polls).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ibmvirt.emulators.hmc import errors
from ibmvirt.emulators.hmc.errors import HMCError
from ibmvirt.emulators.hmc.model import Response

# A job body returns (job-status-code, job-reason-code, job-results).
JobOutcome = tuple[int, int, Any]


@dataclass
class Job:
    """One asynchronous operation as the HMC reports it."""

    job_id: str
    op_method: str
    op_uri: str
    status: str = "running"  # running -> complete (or canceled)
    status_code: int | None = None
    reason_code: int | None = None
    results: Any = None
    timer: threading.Timer | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"/api/jobs/{self.job_id}"

    def query_body(self) -> dict[str, Any]:
        """Body of Query Job Status: results only once the job has ended."""
        body: dict[str, Any] = {"status": self.status}
        if self.status != "running":
            body["job-status-code"] = self.status_code
            body["job-reason-code"] = self.reason_code
            body["job-results"] = self.results
        return body


class JobManager:
    """Creates jobs, completes them after ``delay`` seconds, answers queries.

    ``lock`` is the emulator's state lock: job bodies run under it, so a job's
    state change (e.g. partition ``starting`` -> ``active``) is atomic with
    respect to API requests.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._jobs: dict[str, Job] = {}

    def submit(self, method: str, uri: str, delay: float, body: Callable[[], JobOutcome]) -> Job:
        """Start a job that runs ``body`` after ``delay`` s (immediately if 0)."""
        job = Job(job_id=uuid.uuid4().hex, op_method=method, op_uri=uri)
        self._jobs[job.job_id] = job

        def finish() -> None:
            with self._lock:
                if job.status != "running":
                    return
                try:
                    job.status_code, job.reason_code, job.results = body()
                except HMCError as exc:
                    job.status_code, job.reason_code = exc.status, exc.reason
                    job.results = {"message": exc.message}
                job.status = "complete"

        if delay <= 0:
            finish()
        else:
            job.timer = threading.Timer(delay, finish)
            job.timer.daemon = True
            job.timer.start()
        return job

    def get(self, job_id: str, method: str, uri: str) -> Job:
        """Look a job up or raise 404/1."""
        job = self._jobs.get(job_id)
        if job is None:
            raise HMCError(errors.NOT_FOUND, f"Job {uri} does not exist (or was deleted)")
        return job

    def delete(self, job_id: str, method: str, uri: str) -> None:
        """Delete Completed Job Status: refused (409) while the job runs."""
        job = self.get(job_id, method, uri)
        if job.status == "running":
            raise HMCError(
                errors.JOB_NOT_COMPLETE,
                f"Job {uri} has not ended; query it until its status is 'complete'",
            )
        del self._jobs[job_id]

    def cancel(self, job_id: str, method: str, uri: str) -> None:
        """Cancel Job: the emulated operations (start/stop) are not cancelable."""
        job = self.get(job_id, method, uri)
        raise HMCError(
            errors.JOB_NOT_CANCELABLE,
            f"Job {job.uri} for {job.op_method} {job.op_uri} cannot be canceled",
        )

    def shutdown(self) -> None:
        """Stop pending timers (used when the emulator stops)."""
        for job in list(self._jobs.values()):
            if job.timer is not None:
                job.timer.cancel()

    def __len__(self) -> int:
        return len(self._jobs)


# -- routes (handlers take the emulator state; typed Any: state.py imports this module)
def query_job(st: Any, req: Any) -> Any:
    """Query Job Status."""
    job = st.jobs.get(req.match.group("jid"), req.method, req.path)
    return Response(200, job.query_body())


def delete_job(st: Any, req: Any) -> Any:
    """Delete Completed Job Status."""
    st.jobs.delete(req.match.group("jid"), req.method, req.path)
    return Response(204)


def cancel_job(st: Any, req: Any) -> Any:
    """Cancel Job."""
    st.jobs.cancel(req.match.group("jid"), req.method, req.path)
    return Response(204)


_J = r"/api/jobs/(?P<jid>[^/?]+)"
ROUTES = [
    ("GET", _J, query_job),
    ("DELETE", _J, delete_job),
    ("POST", _J + "/operations/cancel", cancel_job),
]
