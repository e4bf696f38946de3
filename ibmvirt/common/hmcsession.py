"""The zhmcclient session both DPM services open from their [dpm] options.

nova-compute (ibmvirt.dpm.host) and the DPM Neutron agent read the same
connection options (ibmvirt.conf.dpm.connection_opts) and must verify the HMC
certificate the same way: against hmc_ca_file, else the system trust store,
never certifi's bundle and never silently off. Each caller turns
:class:`HMCSessionConfigError` into its own start-up error type.
"""

from __future__ import annotations

import zhmcclient
from oslo_log import log as logging

from ibmvirt.common import tls

LOG = logging.getLogger(__name__)


class HMCSessionConfigError(Exception):
    """A connection option is missing or unusable; the message names it."""


def verify_cert(dpm) -> bool | str:
    """zhmcclient's ``verify_cert`` for the [dpm] group ``dpm``."""
    if dpm.hmc_insecure:
        LOG.warning(
            "[dpm] hmc_insecure is set: the HMC certificate is not verified, so the "
            "HMC password can be intercepted. Set [dpm] hmc_ca_file instead."
        )
        return False
    if dpm.hmc_ca_file:
        return dpm.hmc_ca_file
    # zhmcclient's verify_cert=True would mean the certifi bundle shipped
    # with requests, not the system store the option's help promises.
    try:
        return tls.system_trust_store()
    except tls.NoTrustStore as exc:
        raise HMCSessionConfigError(
            f"[dpm] hmc_ca_file is unset and this system has {exc}; set [dpm] "
            "hmc_ca_file to the CA bundle that signed the HMC certificate"
        ) from None


def build_session(
    dpm, retry_timeout_config: zhmcclient.RetryTimeoutConfig | None = None
) -> zhmcclient.Session:
    """A session to the HMC(s) of [dpm] (logon happens at the first request)."""
    required = ("hmc", "hmc_username", "hmc_password")
    missing = [f"[dpm] {name}" for name in required if not getattr(dpm, name)]
    if missing:
        raise HMCSessionConfigError(f"{', '.join(missing)} must be set to reach the HMC")
    hosts = list(dpm.hmc)
    return zhmcclient.Session(
        hosts if len(hosts) > 1 else hosts[0],
        dpm.hmc_username,
        dpm.hmc_password,
        port=dpm.hmc_port,
        verify_cert=verify_cert(dpm),
        retry_timeout_config=retry_timeout_config,
    )
