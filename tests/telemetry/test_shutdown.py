"""The agent's shutdown closes the inspector (cotyledon workers skip atexit)."""

from __future__ import annotations

import pytest
from ceilometer.compute.pollsters import instance_stats
from ceilometer.polling import manager

from ibmvirt.cmd import ceilometer_polling

from .conftest import dpm_partition, nova_instance, novalink_log, pvm_lpar
from .test_dpm import CONTEXTS


@pytest.fixture
def terminate_hook(monkeypatch):
    monkeypatch.setattr(manager.AgentManager, "terminate", manager.AgentManager.terminate)
    ceilometer_polling.install_terminate_hook()
    agent = manager.AgentManager.__new__(manager.AgentManager)  # no coordinator, no tasks
    agent.partition_coordinator = None
    agent.stop_pollsters_tasks = lambda: None
    return agent


def _poll(conf, instances):
    list(instance_stats.VCPUsPollster(conf).get_samples(None, {}, instances))


def test_terminate_deletes_the_dpm_metrics_context(dpm_conf, hmc, cpc, terminate_hook):
    inst = nova_instance()
    dpm_partition(hmc, cpc, inst)
    _poll(dpm_conf, [inst])
    assert len(hmc.emulator.engine.metrics.contexts) == 1
    terminate_hook.terminate()
    assert hmc.emulator.request_count("DELETE", CONTEXTS + "/") == 1
    assert hmc.emulator.request_count("DELETE", "/api/sessions/this-session$") == 1
    assert hmc.emulator.engine.metrics.contexts == {}


def test_terminate_logs_off_novalink(pvm_conf, pvm, novalink, terminate_hook):
    inst = nova_instance()
    pvm_lpar(pvm, inst)
    _poll(pvm_conf, [inst])
    terminate_hook.terminate()
    logoffs = [r for r in novalink_log(novalink).records() if r.method == "DELETE"]
    assert any(r.path.endswith("/web/Logon") for r in logoffs)
