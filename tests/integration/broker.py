"""A throwaway certificate authority (openssl) and a mosquitto broker on loopback that mirrors the IoT policy."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

TIMEOUT_S = 20.0
"""Generous: the tests run on small, busy CI machines."""


def find_mosquitto() -> str | None:
    # Debian installs the broker in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


def find_openssl() -> str | None:
    return shutil.which("openssl")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S, interval_s: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@dataclass(frozen=True)
class Identity:
    """A certificate and its key, named as device/simulate.py's --cert-dir expects."""

    name: str
    cert: Path
    key: Path

    def key_material(self) -> list[str]:
        """The base64 lines of the private key's PEM body: printing any of them is a leak."""
        lines = [line.strip() for line in self.key.read_text().splitlines()]
        return [line for line in lines if line and not line.startswith("-----")]


class Authority:
    """A certificate authority in `directory`, made with the openssl command line (EC P-256 keys)."""

    def __init__(self, directory: Path, openssl: str, name: str = "Test CA") -> None:
        self.directory = directory
        self._openssl = openssl
        directory.mkdir(parents=True, exist_ok=True)
        self.cert = directory / "ca.pem"
        self._key = directory / "ca.key"
        self._run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self._key, "-out", self.cert, "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, *, server_hosts: Sequence[str] = ()) -> Identity:
        """A certificate with common name `name`; a server certificate when `server_hosts` are given."""
        cert = self.directory / f"{name}.cert.pem"
        key = self.directory / f"{name}.private.key"
        request = self.directory / f"{name}.csr"
        extensions = self.directory / f"{name}.ext"
        if server_hosts:
            names = ",".join(f"IP:{host}" if host[0].isdigit() else f"DNS:{host}" for host in server_hosts)
            extensions.write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
        else:
            extensions.write_text("extendedKeyUsage=clientAuth\n")
        self._run(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", request, "-subj", f"/CN={name}",
        )  # fmt: skip
        self._run(
            "x509", "-req", "-in", request, "-CA", self.cert, "-CAkey", self._key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", extensions,
        )  # fmt: skip
        return Identity(name, cert, key)

    def _run(self, *args: str | Path) -> None:
        subprocess.run([self._openssl, *map(str, args)], check=True, capture_output=True, timeout=60)  # noqa: S603


# Mirrors template.yaml's DevicePolicy (test_the_broker_acl_mirrors_the_device_policy checks): a
# device (username = its certificate's common name) publishes only its own telemetry and receives
# only its own actions and alarms. The observer stands for the cloud side: the IoT rules read
# telemetry, an operator publishes actions, InferenceFunction publishes alarm events. The gateway
# stands for a gateway identity with a policy of its own (docs/security.md).
#
# What mosquitto cannot mirror: AWS IoT Core also lets a certificate connect only with its thing's
# name as client id (iot:Connect on client/${iot:Connection.Thing.ThingName}); mosquitto has no
# such rule without a plugin, so here a device may pick any client id. Its permissions follow its
# certificate (%u) all the same; test_template.py checks the Connect statement.
ACL = """\
pattern write motors/%u/telemetry
pattern read motors/%u/actions
pattern read motors/%u/alarms

user observer
topic read motors/+/telemetry
topic write motors/+/actions
topic write motors/+/alarms

user gateway
topic write motors/+/telemetry
topic read motors/+/actions
"""


class Mosquitto:
    """mosquitto on 127.0.0.1:`port` with mutual TLS, certificate identity, the ACL and persistence."""

    def __init__(self, executable: str, directory: Path, authority: Authority, server: Identity) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.ca = authority.cert
        self.log = directory / "mosquitto.log"
        self.config = directory / "mosquitto.conf"
        acl = directory / "acl"
        acl.write_text(ACL)
        data = directory / "data"
        data.mkdir(exist_ok=True)
        self.config.write_text(
            f"""\
# Started as root, mosquitto drops to the user named here before it reads the keys: the user
# running the tests can read them.
user {pwd.getpwuid(os.getuid()).pw_name}
listener {self.port} 127.0.0.1
cafile {authority.cert}
certfile {server.cert}
keyfile {server.key}
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file {acl}
# Sessions and queued messages survive a restart (written on a clean shutdown).
persistence true
persistence_location {data}/
max_queued_messages 100000
log_dest stderr
log_type all
"""
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def start(self) -> None:
        self._log_file = self.log.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - our own command line
            [self.executable, "-c", str(self.config)], stdout=self._log_file, stderr=subprocess.STDOUT
        )
        if not wait_until(self._listening, TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()[-3000:]}")

    def _listening(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"mosquitto exited:\n{self.log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): mosquitto writes its persistence file."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(TIMEOUT_S)
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Peer:
    """An MQTT5 client of the test (observer, operator or a forging device): subscribes, records, publishes."""

    def __init__(
        self,
        broker: Mosquitto,
        identity: Identity,
        topics: Sequence[str] = (),
        *,
        persistent_session: bool = False,
    ) -> None:
        self.name = identity.name
        self.topics = tuple(topics)
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopped = threading.Event()
        session: dict[str, Any] = {}
        if persistent_session:
            # Rejoin the broker's session after a reconnect: what arrived meanwhile is delivered.
            # Clean start must be off from the first connection: mosquitto 2.0.11 writes only such
            # sessions to its persistence file, so REJOIN_POST_SUCCESS would lose it on a restart.
            session = {
                "session_behavior": mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS,
                "session_expiry_interval_sec": 120,
            }
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="127.0.0.1",
            port=broker.port,
            cert_filepath=str(identity.cert),
            pri_key_filepath=str(identity.key),
            ca_filepath=str(broker.ca),
            client_id=f"{identity.name}-{uuid.uuid4().hex[:8]}",
            min_reconnect_delay_ms=100,
            max_reconnect_delay_ms=1000,
            on_publish_received=self._on_publish,
            on_lifecycle_connection_success=lambda _: self._connected.set(),
            on_lifecycle_disconnection=lambda _: self._connected.clear(),
            on_lifecycle_stopped=lambda _: self._stopped.set(),
            **session,
        )

    def __enter__(self) -> Peer:
        self.client.start()
        if not self._connected.wait(TIMEOUT_S):
            raise RuntimeError(f"MQTT client {self.name} could not connect")
        if self.topics:
            subscriptions = [mqtt5.Subscription(topic_filter=t, qos=mqtt5.QoS.AT_LEAST_ONCE) for t in self.topics]
            self.client.subscribe(mqtt5.SubscribePacket(subscriptions=subscriptions)).result(TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()
        self._stopped.wait(TIMEOUT_S)

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        with self._lock:
            self.received.append((data.publish_packet.topic, bytes(data.publish_packet.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.received)

    def publish(self, topic: str, payload: bytes) -> mqtt5.PubackReasonCode:
        result = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE))
        return mqtt5.PubackReasonCode(result.result(TIMEOUT_S).puback.reason_code)
