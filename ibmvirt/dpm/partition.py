"""One instance's partition: lookup, creation, the status machine and deletion.

The HMC is the only record of a partition: it is found by its name
``OpenStack-<host>-<uuid>`` (zhmcclient's name-URI cache makes repeated lookups
free), and its status decides what a power operation has to do.
"""

from __future__ import annotations

import itertools
import time

import zhmcclient
from nova import exception
from nova.compute import power_state
from nova.virt import hardware
from oslo_log import log as logging

from ibmvirt.dpm import exceptions as dpm_exc
from ibmvirt.dpm import naming
from ibmvirt.dpm.host import Host, PartitionSummary

LOG = logging.getLogger(__name__)

# Partition 'status' values of the HMC data model mapped to Nova power states.
# Transient and unknown statuses map to NOSTATE, which Nova's power-state sync
# ignores, so a partition that is starting is never "stopped" by the sync.
# 'paused' is what an in-band shutdown leaves behind (the OS stopped, the
# partition still holds its resources): Nova sees a guest that shut down.
POWER_STATES = {
    "active": power_state.RUNNING,
    "degraded": power_state.RUNNING,
    "stopped": power_state.SHUTDOWN,
    "paused": power_state.SHUTDOWN,
    "terminated": power_state.CRASHED,
    "reservation-error": power_state.CRASHED,
    "starting": power_state.NOSTATE,
    "stopping": power_state.NOSTATE,
    "communications-not-active": power_state.NOSTATE,
    "status-check": power_state.NOSTATE,
}
RUNNING_STATUSES = ("active", "degraded")
#: Statuses from which "Stop Partition" is needed before "Start Partition" works.
STOP_FIRST_STATUSES = ("paused", "terminated", "reservation-error")


#: Seconds between polls of an HMC job: quick at first, then every 2 s.
JOB_POLL_INTERVALS = (0.1, 0.2, 0.5, 1.0, 2.0)


def _wait_for_job(job: zhmcclient.Job, timeout: float | None) -> None:
    """Wait for an HMC job; raise its error (HTTPError) or OperationTimeout."""
    deadline = time.monotonic() + timeout if timeout else None
    intervals = itertools.chain(JOB_POLL_INTERVALS, itertools.repeat(JOB_POLL_INTERVALS[-1]))
    for delay in intervals:
        status, _ = job.check_for_completion()
        if status == "complete":
            return
        if deadline is not None and time.monotonic() > deadline:
            raise zhmcclient.OperationTimeout(
                f"HMC job {job.uri} did not complete within {timeout} s", timeout
            )
        time.sleep(delay)


def instance_info(status: str | None) -> hardware.InstanceInfo:
    """Nova's view of a partition status."""
    return hardware.InstanceInfo(state=POWER_STATES.get(status or "", power_state.NOSTATE))


class Guest:
    """The partition of one Nova instance on this host's CPC."""

    def __init__(self, host: Host, instance) -> None:
        self.host = host
        self.instance = instance
        self.name = naming.partition_name(host.name, instance.uuid)

    # -- lookup -------------------------------------------------------------

    def find(self) -> zhmcclient.Partition | None:
        """The partition, or None; free when the name-URI cache knows it."""
        try:
            return self.host.require_cpc().partitions.find_by_name(self.name)
        except zhmcclient.NotFound:
            return None

    def get(self) -> zhmcclient.Partition:
        """The partition, or InstanceNotFound."""
        partition = self.find()
        if partition is None:
            raise exception.InstanceNotFound(instance_id=self.instance.uuid)
        return partition

    def status(self, partition: zhmcclient.Partition) -> str:
        """Current status from the HMC (one GET)."""
        try:
            status = partition.get_properties_pulled("status")
        except zhmcclient.CeasedExistence as exc:
            self._forget_uri()
            raise exception.InstanceNotFound(instance_id=self.instance.uuid) from exc
        except zhmcclient.HTTPError as exc:
            if exc.http_status == 404:
                self._forget_uri()
                raise exception.InstanceNotFound(instance_id=self.instance.uuid) from exc
            raise
        self._remember(partition, status)
        return status

    def _remember(
        self, partition: zhmcclient.Partition, status: str, operation: bool = False
    ) -> None:
        self.host.remember(
            PartitionSummary(self.name, partition.uri, status, self.instance.uuid), operation
        )

    def _forget_uri(self) -> None:
        cpc = self.host.require_cpc()
        cpc.partitions.invalidate_cache()

    # -- lifecycle ----------------------------------------------------------

    def create(self) -> zhmcclient.Partition:
        """Create the stopped partition sized by the flavor (shared IFLs)."""
        flavor = self.instance.flavor
        props = {
            "name": self.name,
            "description": naming.partition_description(
                self.host.name, getattr(self.instance, "display_name", "") or ""
            ),
            "ifl-processors": int(flavor.vcpus),
            "initial-memory": int(flavor.memory_mb),
            "maximum-memory": int(flavor.memory_mb),
        }
        partition = self.host.require_cpc().partitions.create(props)
        self._remember(partition, "stopped")
        LOG.info("Created partition %s", self.name, instance=self.instance)
        return partition

    def start(
        self, partition: zhmcclient.Partition | None = None, status: str | None = None
    ) -> None:
        """Bring the partition to active from whatever status it is in.

        ``status`` saves a request when the caller knows it (e.g. just created).
        """
        partition = partition or self.get()
        status = status or self.status(partition)
        if status == "starting":
            partition.wait_for_status(list(RUNNING_STATUSES))
            return
        if status == "stopping":
            partition.wait_for_status(["stopped"])
            status = "stopped"
        if status in RUNNING_STATUSES:
            return
        if status in STOP_FIRST_STATUSES:
            # Start is refused from these (STS00005E); Stop resets the partition.
            self._stop(partition)
        self.host.forget(self.instance.uuid)
        status = self._call(partition, "start", RUNNING_STATUSES)
        self._remember(partition, status, operation=True)

    def stop(self, partition: zhmcclient.Partition | None = None) -> None:
        """Bring the partition to stopped (a hard stop: DPM has no ACPI-style shutdown)."""
        partition = partition or self.get()
        status = self.status(partition)
        if status == "stopped":
            return
        if status == "stopping":
            partition.wait_for_status(["stopped"])
            return
        if status == "starting":
            partition.wait_for_status(list(RUNNING_STATUSES) + ["reservation-error"])
        self._stop(partition)

    def _stop(self, partition: zhmcclient.Partition) -> None:
        self.host.forget(self.instance.uuid)
        try:
            self._call(partition, "stop", ("stopped",))
        except dpm_exc.PartitionOperationFailed:
            # A concurrent stop may have won (HTTP 409 reason 1: wrong status).
            if self.status(partition) != "stopped":
                raise
        self._remember(partition, "stopped", operation=True)

    def _call(
        self, partition: zhmcclient.Partition, operation: str, statuses: tuple[str, ...]
    ) -> str:
        """Run Start/Stop Partition, wait for its job and the status; return the status.

        zhmcclient polls jobs every 10 s; polling ourselves, quickly at first,
        makes a start that takes 1 s on the HMC take about 1 s for Nova too.
        """
        session = partition.manager.session
        try:
            job = getattr(partition, operation)(wait_for_completion=False)
            if isinstance(job, zhmcclient.Job):
                _wait_for_job(job, session.retry_timeout_config.operation_timeout)
            partition.wait_for_status(list(statuses))
            return partition.prop("status", statuses[0])
        except zhmcclient.CeasedExistence as exc:
            raise exception.InstanceNotFound(instance_id=self.instance.uuid) from exc
        except zhmcclient.HTTPError as exc:
            if exc.http_status == 404:
                raise exception.InstanceNotFound(instance_id=self.instance.uuid) from exc
            raise dpm_exc.PartitionOperationFailed(
                operation=operation, partition=self.name, reason=str(exc)
            ) from exc
        except (zhmcclient.OperationTimeout, zhmcclient.StatusTimeout) as exc:
            raise dpm_exc.PartitionOperationFailed(
                operation=operation,
                partition=self.name,
                reason=f"{exc}; raise [dpm] operation_timeout / status_timeout if the HMC is slow",
            ) from exc

    def delete(self, partition: zhmcclient.Partition) -> None:
        """Delete a stopped partition; its NICs and HBAs go with it."""
        try:
            partition.delete()
        except zhmcclient.CeasedExistence:
            self._forget_uri()
        except zhmcclient.HTTPError as exc:
            if exc.http_status != 404:
                raise
            self._forget_uri()
        self.host.forget(self.instance.uuid)
        LOG.info("Deleted partition %s", self.name, instance=self.instance)

    def update(self, partition: zhmcclient.Partition, properties: dict) -> None:
        """Update partition properties in one request."""
        if properties:
            partition.update_properties(properties)

    def console_output(self) -> str:
        """The operating system messages of the partition (SE 2.14 and later)."""
        if self.host.se_version < (2, 14, 0):
            raise NotImplementedError(
                "List OS Messages needs SE 2.14.0 or later; this CPC has SE "
                + ".".join(map(str, self.host.se_version))
            )
        partition = self.get()
        try:
            result = partition.list_os_messages()
        except zhmcclient.HTTPError as exc:
            if exc.http_status == 404 and exc.reason == 1 and self.find() is None:
                raise exception.InstanceNotFound(instance_id=self.instance.uuid) from exc
            raise exception.ConsoleLogOutputException(
                instance_id=self.instance.uuid,
                reason=f"the HMC could not list the operating system messages of "
                f"partition {self.name}: {exc}",
            ) from exc
        lines = [m.get("message-text", "") for m in result.get("os-messages", [])]
        return "\n".join(line.rstrip("\n") for line in lines) + ("\n" if lines else "")
