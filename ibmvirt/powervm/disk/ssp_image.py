"""One image LU per cluster, however many hosts spawn from the image at once.

pypowervm's get_or_upload_image_lu lets a host that created its marker LU
first and checked before the others' markers appeared upload alongside a
later host whose marker sorts first: two image LUs of one name (seen with the
emulator's shared pool). Here a host uploads only if, after creating its
marker, it sees no other marker and no image LU of that name; otherwise it
removes its marker and tries again after a random pause. Of hosts racing, at
most one goes on; an upload in progress (its marker present) is waited for.
"""

from __future__ import annotations

import random
import time
import uuid

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import util as pvm_util
from pypowervm.tasks import storage as pvm_stg
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.powervm import exceptions as pvm_exc

LOG = logging.getLogger(__name__)

MARKER_SIZE_GB = 0.001
#: Seconds between looks at the pool while another host uploads or races us.
PAUSE_MIN, PAUSE_MAX = 1.0, 5.0
#: How long an upload by another host (its marker LU) is waited for.
WAIT_LIMIT = 3600.0


def _image_lus(tier, name: str) -> list:
    lus = pvm_stor.LUEnt.search(tier.adapter, parent=tier, lu_type=pvm_stor.LUType.IMAGE)
    return [lu for lu in lus if lu.name.endswith(name)]


def _pause() -> None:
    time.sleep(random.uniform(PAUSE_MIN, PAUSE_MAX))  # noqa: S311  (not security)


def get_or_upload(tier, name: str, vios_uuid: str, stream_factory, size: int):
    """The image LU ``name`` in ``tier``, uploaded from ``stream_factory()`` if missing."""
    name = pvm_util.sanitize_file_name_for_api(name)
    marker_prefix = "part"
    waited = 0.0
    while True:
        lus = _image_lus(tier, name)
        markers = [lu for lu in lus if lu.name != name and lu.name.startswith(marker_prefix)]
        images = [lu for lu in lus if lu.name == name]
        if images and not markers:
            return images[0]
        if markers:
            if waited > WAIT_LIMIT:
                raise pvm_exc.ImageUploadStuck(name=name, markers=[m.name for m in markers])
            start = time.monotonic()
            _pause()
            waited += time.monotonic() - start
            continue
        mine = f"{marker_prefix}{uuid.uuid4().hex[:8]}{name}"[: pvm_const.MaxLen.FILENAME_DEFAULT]
        tier, marker = pvm_stg.crt_lu(tier, mine, MARKER_SIZE_GB, typ=pvm_stor.LUType.IMAGE)
        try:
            rivals = [lu for lu in _image_lus(tier, name) if lu.name != mine]
            if rivals:
                LOG.info("Image LU %s: another host is uploading it too; backing off", name)
                marker.delete()
                marker = None
                _pause()
                continue
            LOG.info("Uploading image LU %s", name)
            tier, image = pvm_stg.crt_lu(
                tier, name, pvm_util.convert_bytes_to_gb(size, dp=2), typ=pvm_stor.LUType.IMAGE
            )
            try:
                pvm_stg.upload_lu(
                    vios_uuid,
                    image,
                    stream_factory(),
                    size,
                    upload_type=pvm_stg.UploadType.IO_STREAM,
                )
            except Exception:
                image.delete()  # a half-written image must not be cloned
                raise
            return image
        finally:
            if marker is not None:
                marker.delete()
