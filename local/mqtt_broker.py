"""An MQTT 5.0 and 3.1.1 broker on loopback with mutual TLS: the local stack's broker when mosquitto is not installed.

It stands in for AWS IoT Core's message broker, for the stack's devices (awscrt's MQTT5 client), its
services, and devices written for the original sample (MQTT 3.1.1, such as the AWS IoT Python SDK v1),
and nothing else: one process, one event loop, no persistence, loopback only.

Supported: MQTT 5.0 and 3.1.1 over TLS 1.2+, every client authenticated by a certificate of the stack's CA
(its identity is the certificate's common name) and authorized by a Policy; PUBLISH at QoS 0 and 1;
subscriptions with '+' and '#' (a wildcard first level never matches a '$' topic); the client's
Receive Maximum and Maximum Packet Size; keep alive (a client silent for 1.5 x its interval is
disconnected); wills (published as soon as a connection ends without a normal DISCONNECT: no
session outlives it to delay them); No Local; Message Expiry; the properties the specification says
a server forwards (payload format, content type, response topic, correlation data, user properties).
Refused connections, publishes and subscriptions are logged (logger "local.broker") with identity,
client id, topic and reason; payloads never are. A payload over 128 KB is refused as AWS IoT Core refuses
it (PAYLOAD_LIMIT_EXCEEDED), and its client disconnected.

Not supported, as the CONNACK says: QoS 2 (DISCONNECT 0x9B), retained messages (DISCONNECT 0x9A),
topic aliases, shared subscriptions, subscription identifiers, enhanced authentication (AUTH), and
sessions that outlive a connection: every connection starts clean and its subscriptions and queued
messages end with it, whatever Clean Start and Session Expiry say (the CONNACK says Session
Present 0 and, when the client asked for more, Session Expiry Interval 0). A second connection with
a client id already connected takes it over (DISCONNECT 0x8E to the first), as in AWS IoT Core.

Overlapping subscriptions of one client get a message once, at the highest QoS granted among them
(the specification allows one copy per subscription or one in all; AWS IoT Core sends one).
Each connection's messages wait in a queue of at most QUEUE_LIMIT: when it is full the oldest is
dropped and counted. Deliveries to the identities in `reveal_publisher_to` carry the publisher's
client id in the user property PUBLISHER_PROPERTY (IoT rules' clientid()); a publisher cannot set it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import ssl
import sys
import threading
from collections.abc import Collection, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from local.mqtt_codec import Publish, Reason, Will
from local.mqtt_connection import CLOSE_GRACE_S, BrokerCounts, Connection, Message, Policy
from motor_maintenance.topics import DEFAULT_NAMESPACE, actions_topic, alarms_topic, check_namespace, telemetry_topic

__all__ = ["LEGACY_TOPIC", "DevicePolicy", "MqttBroker", "main"]

log = logging.getLogger("local.broker")

HANDSHAKE_TIMEOUT_S = 10.0
LEGACY_TOPIC = "iml_iotevents_data"
"""The original sample's topic (template.yaml's DevicePolicy grants it under LegacyTopicAllowed)."""
THING_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")
"""AWS IoT thing names: a device identity must be one (so it cannot smuggle '/', '+' or '#' into a topic)."""


class DevicePolicy:
    """template.yaml's DevicePolicy, with the thing name = the certificate's common name.

    A device connects only with its thing name as client id, publishes only its own telemetry, and
    subscribes to and receives only its own actions and alarms (filters exactly, as IoT policy
    resources name them: no wildcard filters). The legacy topic is granted only with
    `allow_legacy_topic`, as the template grants it only with AllowLegacyTopic=true ("false" by default).
    Every topic is under `namespace`, the template's TopicNamespace.
    The `services` stand in for IoT Core's rules engine and data plane, which IAM governs, not the
    device policy: they may do everything.
    """

    def __init__(
        self, services: Iterable[str] = (), *, allow_legacy_topic: bool = False, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        self.services = frozenset(services)
        self.allow_legacy_topic = allow_legacy_topic
        self.namespace = check_namespace(namespace)

    def can_connect(self, identity: str, client_id: str) -> bool:
        if identity in self.services:
            return True
        return THING_NAME.fullmatch(identity) is not None and client_id == identity

    def can_publish(self, identity: str, topic: str) -> bool:
        if identity in self.services or topic == telemetry_topic(identity, self.namespace):
            return True
        return self.allow_legacy_topic and topic == LEGACY_TOPIC

    def can_subscribe(self, identity: str, topic_filter: str) -> bool:
        return identity in self.services or topic_filter in self._inbox(identity)

    def can_receive(self, identity: str, topic: str) -> bool:
        return identity in self.services or topic in self._inbox(identity)

    def _inbox(self, identity: str) -> tuple[str, str]:
        return actions_topic(identity, self.namespace), alarms_topic(identity, self.namespace)


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Close the connection; cut it if the TLS goodbye takes longer than CLOSE_GRACE_S."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE_S)
    except Exception:  # timed out, or the connection ended with an error: either way it is over
        writer.transport.abort()


def _common_name(peercert: Any) -> str | None:
    """The subject's common name of a verified certificate (ssl.SSLSocket.getpeercert() form)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class MqttBroker:
    """The broker on its own event loop in a daemon thread: start(), then stop() (idempotent)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cafile: str | Path,
        certfile: str | Path,
        keyfile: str | Path,
        policy: Policy,
        reveal_publisher_to: Collection[str] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.policy = policy
        self.reveal_publisher_to = frozenset(reveal_publisher_to)
        self.counts = BrokerCounts()
        self._files = (str(cafile), str(certfile), str(keyfile))
        self._clients: dict[str, Connection] = {}
        self._connected: tuple[str, ...] = ()
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._stopped = False

    # -- what the owner calls (any thread) -------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Listen; returns once the port is bound (`port` holds it). Raises what prevented it."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the broker was started already")
            context = self._tls_context()  # bad files fail here, in the caller's thread
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(context, ready), name="local-mqtt-broker", daemon=True
            )
            self._thread.start()
        if not ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"the broker did not start within {timeout_s} s")
        if self._failure is not None:
            self._thread.join(timeout_s)
            raise RuntimeError(f"the broker could not listen on {self.host}:{self.port}") from self._failure

    def stop(self, timeout_s: float = 30.0) -> None:
        """Disconnect every client (DISCONNECT 0x8B), close the listener, end the thread."""
        with self._lock:
            thread, loop, stopping = self._thread, self._loop, self._stopping
            if thread is None or self._stopped:
                return
            self._stopped = True
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("the broker thread did not end within %s s", timeout_s)

    def connected_clients(self) -> tuple[str, ...]:
        """Client ids connected now."""
        return self._connected

    def _tls_context(self) -> ssl.SSLContext:
        cafile, certfile, keyfile = self._files
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile, keyfile)
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    # -- the broker thread ----------------------------------------------------------------------------------

    def _run(self, context: ssl.SSLContext, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(context, ready))
        except BaseException as exc:
            if ready.is_set():  # it was serving: a bug, not a port in use
                log.exception("the broker failed")
            self._failure = exc
        finally:
            ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # a host name's lookup thread
            loop.close()

    async def _serve(self, context: ssl.SSLContext, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        # TLS is started by each connection itself, so that a refused handshake can be logged.
        server = await asyncio.start_server(partial(self._handle, context), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        with self._lock:
            self._loop = asyncio.get_running_loop()
            stop_requested = self._stopped
        ready.set()
        log.info("listening on %s:%d", self.host, self.port)
        if not stop_requested:
            await self._stopping.wait()
        server.close()
        for connection in list(self._connections):
            connection.close(Reason.SERVER_SHUTTING_DOWN)
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S * 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for writer in self._writers:  # whatever a cancelled connection left open
            writer.transport.abort()
        await asyncio.sleep(0)  # lets the aborted transports close their sockets
        await server.wait_closed()
        log.info(
            "stopped: received=%d refused=%d (payload too large: %d) delivered=%d dropped=%d",
            self.counts.received,
            self.counts.refused,
            self.counts.too_large,
            self.counts.delivered,
            self.counts.dropped,
        )

    async def _handle(
        self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        connection = None
        secured = False
        try:
            try:
                await writer.start_tls(context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
                secured = True
            except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError) as exc:
                # A port probe, or a client that gave up: nothing to report.
                log.debug("TLS handshake ended by the peer: peer=%s (%s)", peer, exc)
                return
            except ssl.SSLCertVerificationError as exc:
                log.warning(
                    "refused TLS connection: peer=%s reason=certificate verify failed: %s", peer, exc.verify_message
                )
                return
            except ssl.SSLError as exc:
                log.warning("refused TLS connection: peer=%s reason=%s", peer, exc.reason or exc)
                return
            except OSError as exc:  # handshake timeout (ConnectionAbortedError) and the like
                log.info("TLS handshake failed: peer=%s reason=%s", peer, exc)
                return
            if self._stopping is not None and self._stopping.is_set():
                return  # handshake finished while the broker was stopping
            identity = _common_name(writer.get_extra_info("peercert"))
            if identity is None:
                log.warning("refused TLS connection: peer=%s reason=certificate without a common name", peer)
                return
            connection = Connection(self, reader, writer, identity, peer)
            self._connections.add(connection)
            await connection.run()
        except Exception:  # a bug must end this connection, never the broker
            log.exception("connection failed: peer=%s", peer)
        finally:
            if connection is not None:
                self._connections.discard(connection)
            if secured:
                await _closed(writer)
            else:  # start_tls closed the socket already; nothing to say goodbye to
                writer.transport.abort()
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)

    # -- what connections call (broker thread) --------------------------------------------------------------

    def register(self, connection: Connection) -> None:
        previous = self._clients.get(connection.client_id)
        if previous is not None and previous is not connection:
            log.info(
                "session taken over: client_id=%s identity=%s by identity=%s",
                connection.client_id,
                previous.identity,
                connection.identity,
            )
            previous.close(Reason.SESSION_TAKEN_OVER)
        self._clients[connection.client_id] = connection
        self._connected = tuple(self._clients)

    def unregister(self, connection: Connection) -> None:
        if self._clients.get(connection.client_id) is connection:
            del self._clients[connection.client_id]
            self._connected = tuple(self._clients)

    def route(self, publisher: Connection, message: Message) -> int:
        """Queue the message for every connection subscribed to its topic; how many."""
        topic_levels = message.topic.split("/")
        receivers = 0
        for connection in self._clients.values():
            qos = connection.matching_qos(topic_levels, connection is publisher)
            if qos is None:
                continue
            if not self.policy.can_receive(connection.identity, message.topic):
                log.debug("not delivered: identity=%s topic=%s reason=policy", connection.identity, message.topic)
                continue
            connection.deliver(message, min(qos, message.qos))
            receivers += 1
        return receivers

    def publish_will(self, connection: Connection, will: Will) -> None:
        topic = will.topic
        if not self.policy.can_publish(connection.identity, topic):
            self.counts.refused += 1
            log.warning(
                "refused will: identity=%s client_id=%s topic=%s", connection.identity, connection.client_id, topic
            )
            return
        self.counts.received += 1
        publish = Publish(topic, will.payload, will.qos, False, 0, will.properties)
        self.route(connection, Message(publish, connection.client_id, asyncio.get_running_loop().time()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.mqtt_broker",
        description="An MQTT 5.0 broker on loopback with mutual TLS and the stack's device policy.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8883, help="0 picks a free port (default: %(default)s)")
    tls = parser.add_argument_group("mutual TLS")
    tls.add_argument("--cafile", type=Path, required=True, help="CA whose client certificates are accepted")
    tls.add_argument("--certfile", type=Path, required=True, help="the broker's certificate")
    tls.add_argument("--keyfile", type=Path, required=True, help="the broker's private key")
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="an identity (certificate common name) with every permission; repeat for several",
    )
    parser.add_argument(
        "--allow-legacy-topic",
        action="store_true",
        help=f"devices may also publish on {LEGACY_TOPIC!r} (the template's AllowLegacyTopic=true)",
    )
    parser.add_argument(
        "--topic-namespace",
        default=DEFAULT_NAMESPACE,
        metavar="NAME",
        help="first level of the devices' topics (the template's TopicNamespace; default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    try:
        check_namespace(args.topic_namespace)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # Blocked before the broker thread starts, so that it inherits the mask and only sigwait sees them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    broker = MqttBroker(
        host=args.host,
        port=args.port,
        cafile=args.cafile,
        certfile=args.certfile,
        keyfile=args.keyfile,
        policy=DevicePolicy(args.service, allow_legacy_topic=args.allow_legacy_topic, namespace=args.topic_namespace),
        reveal_publisher_to=args.service,
    )
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:  # a port in use, unreadable certificate files
        detail = f"{exc} ({exc.__cause__})" if exc.__cause__ else str(exc)
        print(f"local.mqtt_broker: {detail}", file=sys.stderr)
        return 1
    print(f"listening on {args.host}:{broker.port}", flush=True)
    received = signal.sigwait(stop_signals)
    log.info("%s: stopping", signal.Signals(received).name)
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
