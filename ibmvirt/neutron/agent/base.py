"""What the three L2 agents share, on Neutron's own ``CommonAgentLoop``.

The loop does the Neutron half (RPC to neutron-server, heartbeat, device
details, up/down); a manager here says which devices the hypervisor has and
what plugging one means. Devices are MACs (PowerVM) or port ids (DPM): ML2
resolves both. ``get_all_devices`` must never raise, because the loop does not
survive it: a manager that cannot read its hypervisor reports the devices it
cannot see as gone, which takes their ports down until it can again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import oslo_messaging
from neutron.api.rpc.handlers import securitygroups_rpc as sg_rpc
from neutron.common import config as common_config
from neutron.conf.agent import common as agent_conf
from neutron.conf.agent import securitygroups_rpc as sg_conf
from neutron.conf.plugins.ml2.drivers import agent as l2_agent_conf
from neutron.plugins.ml2.drivers.agent import _agent_manager_base as amb
from neutron.plugins.ml2.drivers.agent import _common_agent as ca
from neutron_lib.agent import topics
from oslo_config import cfg
from oslo_log import log as logging
from oslo_service import service

LOG = logging.getLogger(__name__)

QUIET_RETRIES = "urllib3.connectionpool=ERROR"
_NOOP_FIREWALLS = (None, "", "noop", "neutron.agent.firewall.NoopFirewallDriver")


class AgentStartupError(Exception):
    """Bad configuration or hypervisor state found at start-up; names the fix."""


class RpcCallbacks(
    sg_rpc.SecurityGroupAgentRpcCallbackMixin, amb.CommonAgentManagerRpcCallBackBase
):
    """Server-to-agent RPC: a port update makes the loop process that device again."""

    # 1.4: network_update, as the other CommonAgentLoop agents.
    target = oslo_messaging.Target(version="1.4")

    def port_update(self, context, **kwargs):
        port = kwargs["port"]
        manager = self.agent.mgr
        self.updated_devices.add(manager.device_of_port(port))
        manager.port_updated(port)

    def network_delete(self, context, **kwargs):
        self.network_map.pop(kwargs.get("network_id"), None)

    def network_update(self, context, **kwargs):
        """Nothing cached per network beyond the segment, which the next
        device details refresh."""


class AgentManager(amb.CommonAgentManagerBase):
    """Base of the three managers: the parts of Neutron's manager interface
    firmware NICs have no use for, and the hooks the loop calls.

    Firmware-backed NICs have no admin state, ARP-spoofing rules or local
    timestamps an agent could set, so those are no-ops (as in
    networking-powervm and networking-dpm).
    """

    extension_driver_type = "ibmvirt"

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        #: What the agent reports in its heartbeat; see :meth:`set_configuration`.
        self.configurations: dict = {}
        self.loop: AgentLoop | None = None

    # -- hooks for subclasses -------------------------------------------------
    def start(self) -> None:
        """Called once before the first loop iteration (start event feeds,
        heal threads)."""

    def stop(self) -> None:
        """Called when the agent stops."""

    def device_of_port(self, port: dict) -> str:
        """The device name this agent reports for a Neutron port."""
        return port["mac_address"].lower()

    def port_updated(self, port: dict) -> None:
        """A port of this host changed on the server (e.g. re-read labels)."""

    # -- reporting ------------------------------------------------------------
    def set_configuration(self, key: str, value) -> None:
        """Change a reported configuration; the next heartbeat carries it."""
        self.configurations[key] = value
        if self.loop is not None and getattr(self.loop, "agent_state", None):
            self.loop.agent_state["configurations"][key] = value

    def mark_updated(self, devices) -> None:
        """Make the loop process these devices again (details, plug, up)."""
        if self.loop is not None and getattr(self.loop, "rpc_callbacks", None):
            self.loop.rpc_callbacks.updated_devices.update(devices)

    # -- Neutron's manager interface -------------------------------------------
    def get_agent_configurations(self):
        return dict(self.configurations)

    def get_agent_id(self):
        return self.agent_id

    def get_extension_driver_type(self):
        return self.extension_driver_type

    def get_rpc_callbacks(self, context, agent, sg_agent):
        return RpcCallbacks(context, agent, sg_agent)

    def get_rpc_consumers(self):
        return [
            [topics.PORT, topics.UPDATE],
            [topics.NETWORK, topics.DELETE],
            [topics.NETWORK, topics.UPDATE],
            [topics.SECURITY_GROUP, topics.UPDATE],
        ]

    def get_agent_api(self, **kwargs):
        return None

    def get_devices_modified_timestamps(self, devices):
        return {}

    def ensure_port_admin_state(self, device, admin_state_up):
        if not admin_state_up:
            LOG.info("Port %s is administratively down; firmware NICs cannot be disabled", device)

    def setup_arp_spoofing_protection(self, device, device_details):
        pass

    def delete_arp_spoofing_protection(self, devices):
        pass

    def delete_unreferenced_arp_protection(self, current_devices):
        pass


class AgentLoop(ca.CommonAgentLoop):
    """Neutron's loop, telling the manager when it starts and stops."""

    def start(self):
        self.mgr.loop = self
        self.mgr.start()
        super().start()

    def stop(self, graceful=True):
        try:
            self.mgr.stop()
        finally:
            super().stop(graceful)


def check_noop_firewall() -> None:
    """Security groups cannot be enforced on firmware NICs: say so at start-up
    instead of pretending (as networking-dpm did)."""
    driver = cfg.CONF.SECURITYGROUP.firewall_driver
    if driver not in _NOOP_FIREWALLS:
        raise AgentStartupError(
            f"[SECURITYGROUP] firewall_driver = {driver!r}: this agent cannot enforce "
            "security groups on firmware NICs; set it to 'noop'"
        )


def register_neutron_agent_opts(conf: cfg.ConfigOpts) -> None:
    """Neutron's options every CommonAgentLoop agent reads ([AGENT] polling and
    heartbeat, [SECURITYGROUP], [DEFAULT] host and RPC)."""
    common_config.register_common_config_options()
    agent_conf.register_agent_state_opts_helper(conf)
    l2_agent_conf.register_agent_opts(conf)
    sg_conf.register_securitygroups_opts(conf)


def main(
    agent_type: str,
    binary: str,
    register_opts: Callable[[cfg.ConfigOpts], None],
    make_manager: Callable[[], AgentManager],
    argv: list[str] | None = None,
) -> int:
    """Run an agent as Neutron runs its own (``--config-file neutron.conf
    --config-file <agent>.ini``); returns the exit code for the console script."""
    register_opts(cfg.CONF)
    register_neutron_agent_opts(cfg.CONF)
    common_config.init(sys.argv[1:] if argv is None else argv)
    # urllib3 warns of each retry, at every poll while NovaLink or the HMC is
    # down; the agent says so once itself. ([DEFAULT] default_log_levels wins.)
    if QUIET_RETRIES not in common_config.EXTRA_LOG_LEVEL_DEFAULTS:
        common_config.EXTRA_LOG_LEVEL_DEFAULTS.append(QUIET_RETRIES)
    common_config.setup_logging()
    try:
        check_noop_firewall()
        manager = make_manager()
    except (cfg.Error, ValueError) as exc:
        # oslo.config reports a bad option value (naming it) when it is first read.
        exc = AgentStartupError(str(exc))
        LOG.error("%s cannot start: %s", binary, exc)
        print(f"{binary}: {exc}", file=sys.stderr)
        return 1
    except AgentStartupError as exc:
        LOG.error("%s cannot start: %s", binary, exc)
        print(f"{binary}: {exc}", file=sys.stderr)
        return 1
    loop = AgentLoop(
        manager,
        cfg.CONF.AGENT.polling_interval,
        cfg.CONF.AGENT.quitting_rpc_timeout,
        agent_type,
        binary,
    )
    LOG.info("%s initialised for host %s; running", binary, cfg.CONF.host)
    service.launch(cfg.CONF, loop, restart_method="mutate").wait()
    return 0
