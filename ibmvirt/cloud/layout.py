"""Where the cloud keeps everything, which ports it uses, and its secrets.

All state lives under one directory (``.cloud`` in the work tree by
default): ``etc/`` generated configs, ``run/`` PIDs, ``logs/`` every
service's log, ``data/`` databases and images. Passwords are generated once
into ``secrets.json`` (mode 0600) and written only into generated configs.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: API ports are the usual OpenStack ones; the infrastructure moves off its
#: defaults so that a system MariaDB or RabbitMQ on this machine is not hit.
PORTS = {
    "keystone": 5000,
    "placement": 8778,
    "glance": 9292,
    "neutron": 9696,
    "nova": 8774,
    "cinder": 8776,
    "mariadb": 13306,
    "rabbitmq": 15672,
    "rabbitmq_dist": 35672,
    "epmd": 14369,
    "hmc": 16794,
}

#: The emulated PowerVM hosts: nova-compute host name -> NovaLink emulator port.
POWERVM_HOSTS = {"pvm1": 12180, "pvm2": 12181}
#: The DPM CPC subset's nova-compute host name.
DPM_HOST = "dpm1"

SECRET_NAMES = ("db", "admin", "service", "rabbit", "hmc")


@dataclass
class Layout:
    root: Path
    venv: Path = field(default_factory=lambda: Path(sys.prefix))
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def openrc(self) -> Path:
        return self.root / "openrc"

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def url(self, service: str, path: str = "") -> str:
        return f"http://{self.host}:{PORTS[service]}{path}"

    def secrets(self) -> dict[str, str]:
        """Passwords of this cloud, made on first use and kept for the next run."""
        path = self.root / "secrets.json"
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        if all(n in known for n in SECRET_NAMES):
            return known
        known = {n: known.get(n) or secrets.token_hex(16) for n in SECRET_NAMES}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(known, f)
        return known

    def db_url(self, name: str) -> str:
        pw = self.secrets()["db"]
        return f"mysql+pymysql://openstack:{pw}@{self.host}:{PORTS['mariadb']}/{name}"

    def transport_url(self) -> str:
        pw = self.secrets()["rabbit"]
        return f"rabbit://openstack:{pw}@{self.host}:{PORTS['rabbitmq']}/"
