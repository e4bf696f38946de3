"""Jobs: ``GET .../do/<Op>`` (template), ``PUT .../do/<Op>`` (submit),
``GET /rest/api/uom/jobs/<id>`` (poll), ``DELETE`` (clean up).

A job runs its operation in a worker thread, spread over the configured job
delay (``Job.pause``), moving NOT_STARTED -> RUNNING -> COMPLETED_OK or
COMPLETED_WITH_ERROR. With a delay of 0 the job completes before the submit
returns, so pypowervm never enters its 1-second poll sleep: fast tests.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from ibmvirt.emulators.novalink import atom, errors
from ibmvirt.emulators.novalink import xmlutil as x
from ibmvirt.emulators.novalink.store import Resource

NOT_STARTED = "NOT_STARTED"
RUNNING = "RUNNING"
COMPLETED_OK = "COMPLETED_OK"
COMPLETED_WITH_ERROR = "COMPLETED_WITH_ERROR"
DONE = (COMPLETED_OK, COMPLETED_WITH_ERROR)


@dataclass
class Job:
    """One submitted job and its progress."""

    job_id: str
    group: str
    op: str
    target: Resource | None
    params: dict[str, str]
    delay: float
    request_path: str
    status: str = NOT_STARTED
    started: str = ""
    completed: str = ""
    results: dict[str, str] = field(default_factory=dict)
    message: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: How far the operation got, for operations with phases (a migration
    #: past its point of no return can no longer be aborted).
    stage: str = ""

    def pause(self, share: float) -> None:
        """Spend ``share`` of the job delay (0..1); returns early if cancelled."""
        if self.delay > 0 and share > 0:
            self.cancelled.wait(self.delay * share)


JobFn = Callable[[Job], dict[str, str] | None]


class JobManager:
    """Registry of job operations and the live jobs."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.delays: dict[str, float] = {}  # per-operation override
        self._ops: dict[tuple[str, str], JobFn] = {}
        self._collection_ops: set[tuple[str, str]] = set()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(int(time.time() * 1000))
        self.completed_count = 0
        # Called in the job's thread once the job has done its work (the
        # emulator delivers messages to peers there).
        self.after_job: Callable[[], None] | None = None

    def register(self, group: str, op: str, fn: JobFn, collection: bool = False) -> None:
        """Make ``<group>/<uuid>/do/<op>`` available (``collection``: ``<group>/do/<op>``
        instead, for jobs that create the object, such as Cluster/do/Create)."""
        self._ops[(group, op)] = fn
        if collection:
            self._collection_ops.add((group, op))

    def collection_level(self, group: str, op: str) -> bool:
        return (group, op) in self._collection_ops

    def has(self, group: str, op: str) -> bool:
        return (group, op) in self._ops

    def operations(self, group: str) -> list[str]:
        return sorted(op for g, op in self._ops if g == group)

    # ---- rendering ------------------------------------------------------
    @staticmethod
    def template(group: str, op: str) -> etree._Element:
        """The JobRequest template the client fills in."""

        def build(root: etree._Element) -> None:
            ro = x.sub_container(root, "RequestedOperation", ns=x.WEB_NS, kb="CUR", kxe="false")
            x.sub(ro, "OperationName", op, ns=x.WEB_NS)
            x.sub(ro, "GroupName", group, ns=x.WEB_NS)
            x.sub_container(root, "JobParameters", ns=x.WEB_NS, kb="CUR", kxe="false")

        return atom.web_entry("JobRequest", build)

    def response(self, job: Job, base: str) -> etree._Element:
        """JobResponse entry (same shape as job_response_*.txt captures)."""

        def build(root: etree._Element) -> None:
            x.sub(
                root,
                "RequestURL",
                None,
                ns=x.WEB_NS,
                href=job.request_path,
                rel="via",
                title="The URL to which the JobRequest was submitted.",
            )
            x.sub(root, "TargetUuid", job.target.uuid if job.target else "", ns=x.WEB_NS)
            x.sub(root, "JobID", job.job_id, ns=x.WEB_NS)
            x.sub(root, "TimeStarted", job.started or "0", ns=x.WEB_NS)
            x.sub(root, "TimeCompleted", job.completed or "0", ns=x.WEB_NS)
            x.sub(root, "Status", job.status, ns=x.WEB_NS)
            jri = x.sub_container(root, "JobRequestInstance", ns=x.WEB_NS, kb="ROR", kxe="false")
            ro = x.sub_container(jri, "RequestedOperation", ns=x.WEB_NS, kb="CUR", kxe="false")
            x.sub(ro, "OperationName", job.op, ns=x.WEB_NS)
            x.sub(ro, "GroupName", job.group, ns=x.WEB_NS)
            jps = x.sub_container(jri, "JobParameters", ns=x.WEB_NS, kb="CUR", kxe="false")
            for k, v in job.params.items():
                # Never echo secrets (iSCSI CHAP passwords) back to clients.
                _param(jps, k, "********" if "password" in k.lower() else v)
            prog = x.sub_container(root, "Progress", ns=x.WEB_NS, kb="ROO", kxe="false")
            x.sub(prog, "LinearProgress", "1.0" if job.status in DONE else "0.0", ns=x.WEB_NS)
            res = x.sub_container(root, "Results", ns=x.WEB_NS, kb="ROR", kxe="false")
            for k, v in job.results.items():
                _param(res, k, v)
            if job.status == COMPLETED_WITH_ERROR:
                rex = x.sub_container(root, "ResponseException", ns=x.WEB_NS, kb="ROO", kxe="false")
                x.sub(rex, "Message", job.message, ns=x.WEB_NS)

        return atom.web_entry(
            "JobResponse", build, self_href=f"{base}/rest/api/uom/jobs/{job.job_id}"
        )

    # ---- lifecycle ------------------------------------------------------
    def submit(
        self, group: str, op: str, target: Resource | None, body: bytes, request_path: str
    ) -> Job:
        """Parse the client's JobRequest and start the job."""
        fn = self._ops.get((group, op))
        if fn is None:
            raise errors.RestError(404, f"{group} has no job operation {op}", errors.UNSUPPORTED)
        try:
            req = x.parse(body)
        except etree.XMLSyntaxError as exc:
            raise errors.bad_request(f"JobRequest for {op} is not well-formed: {exc}") from exc
        if x.local(req) != "JobRequest":
            raise errors.bad_request(f"Expected a JobRequest body for {op}, got {x.local(req)}")
        name = req.findtext(
            f"{x.q('RequestedOperation', x.WEB_NS)}/{x.q('OperationName', x.WEB_NS)}"
        )
        if name != op:
            raise errors.bad_request(f"JobRequest names operation {name!r} but was sent to {op}")
        params: dict[str, str] = {}
        for jp in req.iter(x.q("JobParameter", x.WEB_NS)):
            k = jp.findtext(x.q("ParameterName", x.WEB_NS))
            if k:
                params[k] = jp.findtext(x.q("ParameterValue", x.WEB_NS)) or ""
        job = Job(
            job_id=str(next(self._ids)),
            group=group,
            op=op,
            target=target,
            params=params,
            delay=self.delays.get(op, self.delay),
            request_path=request_path,
        )
        with self._lock:
            self._jobs[job.job_id] = job
        if job.delay <= 0:
            self._run(job, fn)
        else:
            threading.Thread(
                target=self._run, args=(job, fn), name=f"nl-job-{op}", daemon=True
            ).start()
        return job

    def _run(self, job: Job, fn: JobFn) -> None:
        job.status = RUNNING
        job.started = x.now_ms()
        try:
            results = fn(job) or {}
            if self.after_job is not None:
                self.after_job()
            job.results = dict(results)
            job.status = COMPLETED_OK
        except errors.JobFailure as exc:
            job.results = {"returnCode": "1", "result": exc.message, **exc.results}
            job.message = exc.message
            job.status = COMPLETED_WITH_ERROR
        except errors.RestError as exc:
            job.results = {"returnCode": "1", "result": exc.message}
            job.message = exc.message
            job.status = COMPLETED_WITH_ERROR
        except Exception as exc:  # a bug in the emulator must not hang the client
            job.results = {"returnCode": "1", "result": f"Internal emulator error: {exc!r}"}
            job.message = job.results["result"]
            job.status = COMPLETED_WITH_ERROR
        finally:
            if self.after_job is not None:
                self.after_job()  # a failed job may have told peers something too
            job.completed = x.now_ms()
            self.completed_count += 1

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise errors.not_found("Job", job_id)
        return job

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.status not in DONE:
            raise errors.RestError(
                409, f"Job {job_id} ({job.op}) is still {job.status}; cancel it first"
            )
        with self._lock:
            self._jobs.pop(job_id, None)

    def cancel(self, job_id: str) -> None:
        self.get(job_id).cancelled.set()

    def live(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())


def _param(parent: etree._Element, name: str, value: str) -> None:
    jp = x.sub_container(parent, "JobParameter", ns=x.WEB_NS)
    x.sub(jp, "ParameterName", name, ns=x.WEB_NS)
    x.sub(jp, "ParameterValue", value, ns=x.WEB_NS, kb="CUR")
