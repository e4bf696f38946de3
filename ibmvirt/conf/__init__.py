"""Configuration of ibmvirt: one module per option group, registered on oslo's CONF.

Nova's ``nova.conf.CONF`` is oslo.config's global ``cfg.CONF``; registering our
groups there lets operators put them in nova.conf.
"""

from oslo_config import cfg

from ibmvirt.conf import dpm, powervm

CONF = cfg.CONF

dpm.register_opts(CONF)
powervm.register_opts(CONF)
