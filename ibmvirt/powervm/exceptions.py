"""Errors of the PowerVM driver, as Nova exception types with actionable messages."""

from __future__ import annotations

from nova import exception
from nova.i18n import _
from pypowervm import exceptions as pvm_ex
from taskflow import exceptions as tf_exc


class ConfigError(exception.NovaException):
    """Bad [powervm] configuration, found at start-up (the message names the option)."""

    msg_fmt = _("[powervm] %(option)s: %(reason)s")


class NovaLinkUnavailable(exception.HypervisorUnavailable):
    msg_fmt = _("The NovaLink REST API at %(host)s is unavailable: %(reason)s")


class LPAROperationFailed(exception.NovaException):
    """A NovaLink or pypowervm error escaped an operation on one LPAR."""

    msg_fmt = _("LPAR %(lpar)s: %(operation)s failed: %(reason)s")


class ImageNotSupported(exception.ImageUnacceptable):
    """An image the disk driver cannot boot (format, size)."""


class VolumeNotVisible(exception.VolumeAttachFailed):
    msg_fmt = _(
        "Volume %(volume_id)s is visible on %(found)d Virtual I/O Server(s) of this "
        "host, %(required)d required ([powervm] vscsi_vios_connections_required): "
        "check the SAN zoning and the LUN masking of the VIOS ports %(wwpns)s."
    )


class ISCSIVolumeNotVisible(exception.VolumeAttachFailed):
    msg_fmt = _(
        "iSCSI volume %(volume_id)s logged in on %(found)d Virtual I/O Server(s) of "
        "this host, %(required)d required ([powervm] vscsi_vios_connections_required): "
        "check that the VIOSes reach the portals %(portals)s and that the target "
        "accepts their initiators %(initiators)s and CHAP secret. %(reason)s"
    )


class NPIVFabricNotConfigured(exception.NovaException):
    msg_fmt = _(
        "NPIV fabric %(fabric)s has no VIOS physical FC port on this host: set "
        "[powervm] fabric_%(fabric)s_port_wwpns to the WWPNs of the ports cabled "
        "to it (this host's ports: %(ports)s)."
    )


class DLPARNotPossible(exception.NovaException):
    msg_fmt = _(
        "LPAR %(lpar)s cannot take %(what)s while it runs: %(reason)s. Stop the "
        "server first, or wait until RMC is active in the guest."
    )


class SnapshotNotSupported(exception.NotSupported):
    msg_fmt = _("LPAR %(lpar)s cannot be snapshotted: %(reason)s")


class MgmtDiskError(exception.NovaException):
    """The boot disk could not be read on the management partition (snapshot)."""

    msg_fmt = _("Boot disk %(disk)s on the NovaLink partition: %(reason)s")


class ImageUploadStuck(exception.NovaException):
    msg_fmt = _(
        "Image LU %(name)s: another host's upload (marker LU %(markers)s) has not "
        "finished in an hour; if no host is uploading it, delete the marker LU."
    )


class BootDiskMissing(exception.NovaException):
    msg_fmt = _("Boot disk %(disk)s is not in %(where)s")


class BootListUnavailable(exception.NovaException):
    """The LPAR's boot list cannot be set (so rescue could not choose its disk)."""

    msg_fmt = _("LPAR %(lpar)s: cannot set the boot list: %(reason)s")

    def __init__(self, message=None, **kwargs):
        kwargs.setdefault(
            "reason",
            "NovaLink shows no BootListInformation/PendingBootString for it (group "
            "Advanced); a NovaLink that does not serve the boot list cannot rescue",
        )
        super().__init__(message, **kwargs)


class MoveRefused(exception.NovaException):
    """A resize or cold migration the driver cannot do (raised before anything changed)."""

    msg_fmt = _("LPAR %(lpar)s cannot move: %(reason)s")


class ConsoleUnavailable(exception.ConsoleTypeUnavailable):
    msg_fmt = _("The virtual terminal of LPAR %(lpar)s is unavailable: %(reason)s")


def failure_reason(exc: Exception) -> str:
    """What went wrong, in words an operator can act on, cause first.

    Nova keeps 255 characters of a fault message, and pypowervm's job errors
    put the server's own message after a long request description.
    """
    if isinstance(exc, pvm_ex.MultipleExceptionsInFeedTask):
        # The same, raised by the FeedTask itself: the wrapped failures say why.
        return failure_reason(exc.wrapped_failure)
    if isinstance(exc, tf_exc.WrappedFailure):
        # A FeedTask whose VIOS updates failed in parallel: the first one says why.
        failures = list(exc)
        first = failures[0].exception if failures and failures[0].exception else None
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return (failure_reason(first) if first is not None else str(exc)) + more
    if isinstance(exc, pvm_ex.HttpError) and exc.her_wrap is not None:
        return f"NovaLink refused {exc.response.reqmethod}: {exc.her_wrap.message}"
    if isinstance(exc, pvm_ex.Error):
        text = str(exc)
        if " -- " in text:
            what = text.split(". HTTP error", 1)[0].split(": The ", 1)[0]
            return f"{what}: {text.rsplit(' -- ', 1)[1]}"
        return f"NovaLink: {text}"
    if isinstance(exc, exception.NovaException):
        return exc.format_message()
    return f"{type(exc).__name__}: {exc}"
