"""The NVRAM stores against what they talk to: Swift behind Keystone over
HTTP (ibmvirt.sandbox.swift) and a directory."""

from __future__ import annotations

import os
import types

import pytest

from ibmvirt.powervm.nvram import base
from ibmvirt.powervm.nvram.local import LocalNvramStore
from ibmvirt.powervm.nvram.swift import SwiftNvramStore
from ibmvirt.sandbox.swift import SwiftServer

UUID = "2f0c6a52-6d1e-4b7a-9a51-0c3b8f1f2a11"


@pytest.fixture
def swift():
    srv = SwiftServer("powervm", "s3cret", "service")
    yield srv
    srv.stop()


def _opts(swift, **over):
    values = dict(
        swift_container="powervm_nvram",
        swift_auth_url=swift.auth_url,
        swift_username="powervm",
        swift_password="s3cret",
        swift_user_domain_name="Default",
        swift_project_name="service",
        swift_project_domain_name="Default",
        swift_cacert=None,
        swift_endpoint_type="public",
        swift_region_name=None,
    )
    values.update(over)
    return types.SimpleNamespace(**values)


def test_swift_store_fetch_delete_and_idempotent_store(swift):
    store = SwiftNvramStore(_opts(swift))
    assert store.fetch(UUID) is None
    assert store.store(UUID, b"nvram-1") is True
    assert swift.objects("powervm_nvram") == {UUID: b"nvram-1"}
    puts = [e for e in swift.log if e[0] == "PUT" and e[1].endswith(UUID)]
    assert store.store(UUID, b"nvram-1") is False  # same bytes: no upload
    assert puts == [e for e in swift.log if e[0] == "PUT" and e[1].endswith(UUID)]
    assert store.fetch(UUID) == b"nvram-1"
    store.delete(UUID)
    store.delete(UUID)  # nothing left: still fine
    assert swift.objects("powervm_nvram") == {}
    assert store.fetch(UUID) is None


def test_an_expired_token_is_renewed_and_the_request_retried_once(swift):
    store = SwiftNvramStore(_opts(swift))
    store.store(UUID, b"old")
    logons = sum(1 for e in swift.log if e[1] == "/v3/auth/tokens")
    swift.expire_tokens()
    assert store.store(UUID, b"new") is True
    assert swift.objects("powervm_nvram")[UUID] == b"new"
    assert sum(1 for e in swift.log if e[1] == "/v3/auth/tokens") == logons + 1
    assert any(status == 401 for _m, _p, status in swift.log)


def test_a_wrong_password_is_an_nvram_error_without_the_password(swift):
    store = SwiftNvramStore(_opts(swift, swift_password="wrong-pw"))
    with pytest.raises(base.NvramError) as err:
        store.store(UUID, b"x")
    assert "wrong-pw" not in str(err.value)


def test_local_store(tmp_path):
    store = LocalNvramStore(str(tmp_path / "nv"))
    assert store.fetch(UUID) is None
    assert store.store(UUID, b"abc") is True
    assert store.store(UUID, b"abc") is False
    assert store.fetch(UUID) == b"abc"
    assert oct(os.stat(tmp_path / "nv").st_mode & 0o777) == "0o700"
    store.store(UUID, b"abcd")
    assert store.fetch(UUID) == b"abcd"
    assert os.listdir(tmp_path / "nv") == [f"{UUID}.nvram"]  # nothing half-written left
    store.delete(UUID)
    store.delete(UUID)
    assert store.fetch(UUID) is None
