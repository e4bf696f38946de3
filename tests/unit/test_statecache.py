"""The power-state cache both drivers use."""

from __future__ import annotations

import time

from ibmvirt.common import statecache
from ibmvirt.common.statecache import StateCache


def test_a_snapshot_answers_for_everything_and_knows_what_is_absent():
    cache = StateCache(ttl=None)
    assert cache.lookup("a") == (False, None)  # nothing known yet
    cache.replace_all({"a": "running"}, time.monotonic())
    assert cache.lookup("a") == (True, "running")
    assert cache.lookup("b") == (True, None)  # known absent


def test_a_change_is_unknown_until_read_again():
    cache = StateCache(ttl=None)
    cache.replace_all({"a": "running"}, time.monotonic())
    cache.changed("a")
    assert cache.lookup("a") == (False, None)
    assert cache.stale_keys() == ["a"]
    cache.put("a", "not activated")
    assert cache.lookup("a") == (True, "not activated")
    assert cache.stale_keys() == []


def test_what_was_learnt_during_a_snapshot_read_survives_it():
    cache = StateCache(ttl=None)
    started = time.monotonic()
    cache.put("a", "starting")  # this driver's own operation, after the read began
    cache.changed("b")  # an event during the read
    cache.replace_all({"a": "not activated", "b": "running"}, started)
    assert cache.lookup("a") == (True, "starting")
    assert cache.lookup("b") == (False, None)


def test_invalidate_distrusts_everything_learnt_before():
    cache = StateCache(ttl=None)
    cache.replace_all({"a": "running"}, time.monotonic())
    cache.put("b", "running")
    cache.invalidate()
    assert not cache.snapshot_valid()
    assert cache.lookup("a") == (False, None)
    assert cache.lookup("b") == (False, None)


def test_a_ttl_is_kept_up_to_its_limit_and_not_past_it(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(statecache.time, "monotonic", lambda: now[0])
    cache = StateCache(ttl=30.0)
    cache.replace_all({"a": "active"}, now[0])
    now[0] += 30.0
    assert cache.lookup("a") == (True, "active")
    assert cache.lookup("x") == (True, None)
    now[0] += 0.001
    assert cache.lookup("a") == (False, None)
    assert cache.lookup("x") == (False, None)
