"""Metrics contexts through zhmcclient's MetricsContext: groups, values that move, refusals."""

from __future__ import annotations

import pytest
import zhmcclient

from ibmvirt.emulators.hmc import metrics

from .conftest import http_error, new_partition


def _values(mc):
    resp = zhmcclient.MetricsResponse(mc, mc.get_metrics())
    return {
        (g.name, ov.resource_uri): (ov.timestamp, ov.metrics)
        for g in resp.metric_group_values
        for ov in g.object_values
    }


def _context(client, groups=("partition-usage", "partition-attached-network-interface")):
    return client.metrics_contexts.create(
        {"anticipated-frequency-seconds": 15, "metric-groups": list(groups)}
    )


def test_groups_are_defined_as_zhmcclient_knows_them(z15_client):
    mc = _context(z15_client, ["partition-usage", "channel-usage"])
    defs = mc.metric_group_definitions
    assert set(defs) == {"partition-usage", "channel-usage"}
    assert list(defs["partition-usage"].metric_definitions) == [
        n for n, _ in metrics.GROUPS["partition-usage"]
    ]
    assert defs["partition-usage"].resource_class == "partition"
    # A classic-mode group on a DPM CPC: defined, no objects.
    assert not any(g == "channel-usage" for g, _ in _values(mc))


def test_values_move_while_a_partition_is_active(z15, z15_client, z15_cpc):
    part = new_partition(z15_cpc)
    vswitch = z15_cpc.virtual_switches.list()[0]
    nic = part.nics.create({"name": "n1", "virtual-switch-uri": vswitch.uri})
    mc = _context(z15_client)
    _, usage = _values(mc)[("partition-usage", part.uri)]
    assert usage["processor-usage"] == 0  # stopped
    z15.emulator.set_partition_status(part.uri, "active")
    state = z15.emulator.engine.metrics
    _values(mc)  # the emulator sees the partition active from this read on
    state.advance(2 * metrics.SAMPLE_SECONDS)
    vals = _values(mc)
    stamp, usage = vals[("partition-usage", part.uri)]
    at = state.sample_time()
    assert stamp.timestamp() == at
    assert usage["processor-usage"] == metrics.processor_usage(part.uri, True, at) > 0
    _, n1 = vals[("partition-attached-network-interface", nic.uri)]
    assert n1["partition-id"] == part.uri.rsplit("/", 1)[1]
    assert n1["bytes-per-second-received"] == metrics.nic_rate(nic.uri)
    first = n1["bytes-received"]
    assert first > 0 and n1["bytes-sent"] == first // 2
    state.advance(metrics.SAMPLE_SECONDS)
    _, n2 = _values(mc)[("partition-attached-network-interface", nic.uri)]
    assert n2["bytes-received"] - first == pytest.approx(
        metrics.nic_rate(nic.uri) * metrics.SAMPLE_SECONDS, abs=1
    )
    # Reads within one sampling interval see the same sample.
    assert _values(mc) == _values(mc)


def test_one_get_metrics_answers_every_partition(z15, z15_client, z15_cpc):
    parts = [new_partition(z15_cpc, name=f"inst-{i}") for i in range(5)]
    mc = _context(z15_client)
    before = z15.emulator.request_count()
    vals = _values(mc)
    assert z15.emulator.request_count() == before + 1
    assert {p.uri for p in parts} <= {uri for g, uri in vals if g == "partition-usage"}


def test_refusals(z15, z15_client):
    for body, code in [
        ({"metric-groups": ["partition-usage"]}, (400, 5)),
        ({"anticipated-frequency-seconds": 14}, (400, 7)),
        ({"anticipated-frequency-seconds": 15, "metric-groups": ["no-such-group"]}, (400, 7)),
    ]:
        with pytest.raises(zhmcclient.HTTPError) as exc:
            z15_client.metrics_contexts.create(body)
        assert http_error(exc) == code
    mc = _context(z15_client)
    # Another session cannot read it; after delete nobody can.
    other = zhmcclient.Client(z15.session())
    stranger = zhmcclient.MetricsContext(other.metrics_contexts, mc.uri, None, mc.properties)
    with pytest.raises(zhmcclient.HTTPError) as exc:
        stranger.get_metrics()
    assert http_error(exc) == (404, 1)
    mc.delete()
    assert z15.emulator.engine.metrics.contexts == {}
    with pytest.raises(zhmcclient.HTTPError) as exc:
        z15_client.session.get(mc.uri)
    assert http_error(exc) == (404, 1)


def test_a_context_dies_with_its_session(z15, z15_client):
    mc = _context(z15_client)
    z15.emulator.expire_sessions()
    with pytest.raises(zhmcclient.HTTPError) as exc:
        mc.get_metrics()  # zhmcclient logs on again: a new session, not the owner
    assert http_error(exc) == (404, 1)
    _context(z15_client)
    assert list(z15.emulator.engine.metrics.contexts.values())[0].owner != ""
    assert len(z15.emulator.engine.metrics.contexts) == 1
