"""DPM driver errors.

Nova's own exception types are used where they carry the right meaning (for
example ImageUnacceptable makes Nova abort a build instead of rescheduling it);
these subclasses only add messages that name the HMC object and the fix.
"""

from __future__ import annotations

from nova import exception
from nova.i18n import _


class DPMConfigurationError(exception.InvalidConfiguration):
    """A [dpm] or [DEFAULT] option does not match the CPC; raised by init_host."""

    msg_fmt = _("Invalid DPM configuration: %(reason)s")


class HMCUnavailable(exception.HypervisorUnavailable):
    """The HMC cannot be reached or refuses the logon."""

    msg_fmt = _("Cannot use the HMC at %(host)s: %(reason)s")


class BootFromImageNotSupported(exception.InstanceUnacceptable):
    """Partitions have no local disk. Nova aborts the build (no reschedule) and
    shows the message of an InstanceUnacceptable raised by prepare_for_spawn;
    other exceptions there become "Failure prepping block device"."""

    msg_fmt = _(
        "Image %(image_id)s is unacceptable: DPM partitions have no local disk, so "
        "instances must boot from a Cinder volume. Create the server with a boot "
        "volume (e.g. `openstack server create --volume <volume> ...` or "
        "--boot-from-volume <size>)."
    )


class PartitionPreparationFailed(exception.InstanceUnacceptable):
    """prepare_for_spawn failed; Nova turns this into a fault naming the reason."""

    msg_fmt = _("Instance %(instance_id)s cannot be prepared on the HMC: %(reason)s")


class InvalidVIF(exception.InvalidInput):
    """A port this driver cannot turn into a NIC (no reschedule would help)."""

    msg_fmt = _("Invalid network interface for a DPM partition: %(reason)s")


class VolumeNotSupported(exception.InvalidInput):
    """A volume this driver cannot attach (not FCP, no usable target)."""

    msg_fmt = _("Volume cannot be used by a DPM partition: %(reason)s")


class PartitionOperationFailed(exception.NovaException):
    """An HMC operation on a partition failed; the message carries the HMC's."""

    msg_fmt = _("HMC operation %(operation)s failed for partition %(partition)s: %(reason)s")
