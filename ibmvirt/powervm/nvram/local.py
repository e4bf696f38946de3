"""NVRAM copies as files in a directory ([powervm] nvram_local_path).

For one site whose compute hosts share that directory (NFS, say): an
evacuate finds the copy only where the destination sees the source's files.
A file is replaced atomically (written aside, then renamed), so a reader
never sees half of one.
"""

from __future__ import annotations

import os
import tempfile

from ibmvirt.powervm.nvram import base


class LocalNvramStore(base.NvramStore):
    name = "local"

    def __init__(self, path: str) -> None:
        self.path = path

    def _file(self, instance_uuid: str) -> str:
        return os.path.join(self.path, f"{instance_uuid}.nvram")

    def store(self, instance_uuid: str, data: bytes) -> bool:
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            if self.fetch(instance_uuid) == data:
                return False
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".nvram-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._file(instance_uuid))
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise base.NvramError(f"cannot write {self._file(instance_uuid)}: {exc}") from exc
        return True

    def fetch(self, instance_uuid: str) -> bytes | None:
        try:
            with open(self._file(instance_uuid), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise base.NvramError(f"cannot read {self._file(instance_uuid)}: {exc}") from exc

    def delete(self, instance_uuid: str) -> None:
        try:
            os.unlink(self._file(instance_uuid))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise base.NvramError(f"cannot remove {self._file(instance_uuid)}: {exc}") from exc
