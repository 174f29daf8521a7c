"""IoT Core on loopback: the MQTT broker with mutual TLS, and the IoT data plane's HTTP API publishing to it.

The broker is mosquitto when installed (its ACL mirrors the template's DevicePolicy), else
local.mqtt_broker; either runs as a child process. What only the built-in broker does, and the
start-up line says so: it ties a certificate to its client id (DevicePolicy's iot:Connect on
client/<thing name>; mosquitto cannot without a plugin) and tells the rules engine who published a
message (IoT SQL's clientid(), which LegacyTelemetryRule maps the motor from). So the legacy topic
(StackOptions.allow_legacy_topic) runs on the built-in broker only. The data plane (local.iot_data) is
what the functions' `iot-data` clients call; it publishes through a service connection of its own.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from local.iot_data import IotDataServer
from local.mqtt_broker import LEGACY_TOPIC
from local.mqtt_client import Message, ServiceClient
from local.mqtt_connection import PAYLOAD_LIMIT
from local.options import shown
from local.pki import LocalPki
from local.processes import Child, free_port, port_open

RULES_ENGINE = "local-rules-engine"
IOT_DATA = "local-iot-data"
SERVICES = (RULES_ENGINE, IOT_DATA)
"""The stack's own identities on the broker: they stand in for IoT Core's services and may do everything."""


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


class IotCore:
    """The broker's process and the data plane publishing to it: start the broker first."""

    def __init__(self, pki: LocalPki, state_dir: Path, log_dir: Path) -> None:
        self.pki, self.state_dir, self.log_dir = pki, state_dir, log_dir
        self.broker_port = 0
        self.broker_kind = ""
        self._client: ServiceClient | None = None
        self._data_plane: IotDataServer | None = None

    def start_data_plane(self) -> str:
        """The data plane, connected to the running broker; its URL."""
        self._client = self.service_client(IOT_DATA)
        self._client.start()
        self._data_plane = IotDataServer(self._client.publish)
        self._data_plane.start()
        return self._data_plane.url

    def service_client(
        self, identity: str, on_message: Callable[[Message], None] | None = None, *, name: str | None = None
    ) -> ServiceClient:
        """A connection with the certificate of one of the stack's services (SERVICES), named `name` or so."""
        return ServiceClient(
            port=self.broker_port,
            ca=self.pki.ca_path,
            cert=self.pki.cert_path(identity),
            key=self.pki.key_path(identity),
            name=name or identity,
            on_message=on_message,
        )

    def stop_data_plane(self) -> None:
        """The data plane and its connection; the broker's process is its owner's to stop."""
        if self._client is not None:
            self._client.stop()
            self._client = None
        if self._data_plane is not None:
            self._data_plane.stop()
            self._data_plane = None

    def start_broker(self, choice: str, say: Callable[[str], None], *, allow_legacy_topic: bool = False) -> Child:
        """The broker's process ('mosquitto', 'builtin' or 'auto': mosquitto when installed and the legacy
        topic is not allowed), listening."""
        if allow_legacy_topic and choice == "mosquitto":
            raise RuntimeError(
                "--allow-legacy-topic needs --broker builtin (or auto): mosquitto cannot tell the rules engine "
                "who published a message, and LegacyTelemetryRule takes the motor from clientid()"
            )
        mosquitto = find_mosquitto() if choice in ("auto", "mosquitto") and not allow_legacy_topic else None
        if choice == "mosquitto" and mosquitto is None:
            raise RuntimeError("--broker mosquitto: mosquitto is not installed (apt-get install mosquitto)")
        self.broker_port = port = free_port()
        if mosquitto is not None:
            child = Child("mosquitto", [mosquitto, "-c", str(self._mosquitto_config())], log_path=self._log)
            self.broker_kind = "mosquitto"
            policy = (
                "device policy: topics enforced; client-id rule NOT enforced (mosquitto cannot tie a client id to "
                "a certificate: --broker builtin does)"
            )
        else:
            child = Child(
                "MQTT broker",
                [sys.executable, "-m", "local.mqtt_broker", "--port", str(port)]
                + ["--cafile", str(self.pki.ca_path), "--certfile", str(self.pki.server_cert_path)]
                + ["--keyfile", str(self.pki.server_key_path)]
                + [arg for name in SERVICES for arg in ("--service", name)]
                + (["--allow-legacy-topic"] if allow_legacy_topic else []),
                log_path=self._log,
            )
            self.broker_kind = "built-in (local.mqtt_broker)"
            policy = "device policy: topics and client-id rule enforced; MQTT 5 and 3.1.1" + (
                f"; legacy topic {LEGACY_TOPIC} allowed" if allow_legacy_topic else ""
            )
        child.start(lambda: port_open(port), timeout_s=30)
        say(f"MQTT broker: {self.broker_kind}, mqtts://127.0.0.1:{port} (mutual TLS, CA {shown(self.pki.ca_path)})")
        say(f"  {policy}; denied publishes logged with the reason in {shown(self._log)}")
        return child

    @property
    def _log(self) -> Path:
        return self.log_dir / "broker.log"

    def _mosquitto_config(self) -> Path:
        """mosquitto with mutual TLS and an ACL that mirrors the template's DevicePolicy (docs/local-stack.md)."""
        acl = self.state_dir / "mosquitto.acl"
        services = "".join(f"user {name}\ntopic readwrite #\n\n" for name in SERVICES)
        acl.write_text(
            "# A device (username = its certificate's CN) publishes only its telemetry and receives only its\n"
            "# own actions and alarms, as DevicePolicy allows; the stack's services stand in for IoT Core.\n"
            "pattern write motors/%u/telemetry\npattern read motors/%u/actions\npattern read motors/%u/alarms\n\n"
            + services
        )
        config = self.state_dir / "mosquitto.conf"
        user = f"user {_user_name()}\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"{user}listener {self.broker_port} 127.0.0.1\n"
            f"cafile {self.pki.ca_path}\ncertfile {self.pki.server_cert_path}\nkeyfile {self.pki.server_key_path}\n"
            "require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n"
            f"acl_file {acl}\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            # Denied publishes ("Denied PUBLISH from <client id> (... '<topic>' ...)": the ACL refused it) and
            # payloads over IoT Core's limit ("Dropped too large PUBLISH") are logged at debug level only.
            f"log_type notice\nlog_type debug\nmessage_size_limit {PAYLOAD_LIMIT}\n"
        )
        return config


def _user_name() -> str:
    import pwd  # noqa: PLC0415 - POSIX only, and only as root

    return pwd.getpwuid(os.getuid()).pw_name
