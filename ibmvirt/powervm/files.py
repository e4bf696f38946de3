"""Upload File artifacts that pypowervm could not delete after an upload.

NovaLink keeps at most about 100 File artifacts; pypowervm returns the File
it failed to delete instead of raising (the upload itself worked), so each
leftover is deleted again here rather than accumulating until uploads fail.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex

LOG = logging.getLogger(__name__)

TRIES = 3


def delete_leftover(leftover, what: str) -> None:
    """Delete the File artifact pypowervm left after uploading ``what``, if any."""
    if leftover is None:
        return
    for attempt in range(1, TRIES + 1):
        try:
            leftover.adapter.delete(leftover.schema_type, root_id=leftover.uuid, service="web")
            return
        except pvm_ex.HttpNotFound:
            return
        except pvm_ex.Error as exc:
            if attempt == TRIES:
                LOG.error(
                    "The upload File %s of %s could not be deleted (%s); delete it on the "
                    "NovaLink (pvmctl) before NovaLink's File limit stops uploads",
                    leftover.uuid,
                    what,
                    exc,
                )
