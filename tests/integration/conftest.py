"""Integration fixtures: one mosquitto broker with a throwaway PKI for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from local.mqtt_client import ServiceClient
from tests.integration.broker import Authority, Identity, Mosquitto, find_mosquitto, find_openssl
from tests.reports import StackReport, registered

if TYPE_CHECKING:
    from local.stack import LocalStack

DEVICES = ("motor-001", "motor-002", "motor-003")


@dataclass(frozen=True)
class Pki:
    """The broker's authority with a certificate per device, and a rogue authority's certificates."""

    authority: Authority
    server: Identity
    observer: Identity
    gateway: Identity
    rogue: Authority
    """Signs the same device names, but the broker does not trust it."""

    @property
    def devices(self) -> Path:
        """--cert-dir for the simulator: <motor>.cert.pem and <motor>.private.key per device."""
        return self.authority.directory

    def device(self, name: str) -> Identity:
        return Identity(name, self.devices / f"{name}.cert.pem", self.devices / f"{name}.private.key")

    def identities(self) -> list[Identity]:
        """Every identity with a private key: the devices', the rogue authority's, the observer's, the gateway's."""
        rogue = [
            Identity(name, self.rogue.directory / f"{name}.cert.pem", self.rogue.directory / f"{name}.private.key")
            for name in DEVICES
        ]
        return [*(self.device(name) for name in DEVICES), *rogue, self.observer, self.gateway, self.server]


def _missing(tool: str) -> None:
    reason = f"{tool} is not installed (apt-get install mosquitto openssl; .ci/run installs them)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the integration tests, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    openssl = find_openssl()
    if openssl is None:
        _missing("openssl")
    assert openssl is not None
    root = tmp_path_factory.mktemp("pki")
    authority = Authority(root / "ca", openssl)
    for name in DEVICES:
        authority.issue(name)
    rogue = Authority(root / "rogue", openssl, name="Rogue CA")
    for name in DEVICES:
        rogue.issue(name)
    return Pki(
        authority=authority,
        server=authority.issue("server", server_hosts=("127.0.0.1", "localhost")),
        observer=authority.issue("observer"),
        gateway=authority.issue("gateway"),
        rogue=rogue,
    )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Mosquitto]:
    executable = find_mosquitto()
    if executable is None:
        _missing("mosquitto")
    assert executable is not None
    mosquitto = Mosquitto(executable, tmp_path_factory.mktemp("mosquitto"), pki.authority, pki.server)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def stack_report(pytestconfig: pytest.Config) -> StackReport:
    """The run's report of the local stack's accounting, printed after pytest's summary."""
    return registered(pytestconfig, StackReport.name, StackReport)


def device_client(stack: LocalStack, motor_id: str, *, flow_control: bool = True) -> ServiceClient:
    """A motor's own MQTT connection to the stack's broker (not started): its certificate from the stack's CA,
    its thing name as client id, and AWS IoT Core's publish limits unless `flow_control` is False."""
    cert, key = stack.device_identity(motor_id)
    return ServiceClient(
        port=stack.iot.broker_port,
        ca=stack.ca_path,
        cert=cert,
        key=key,
        name=motor_id,
        client_id=motor_id,
        flow_control=flow_control,
    )
