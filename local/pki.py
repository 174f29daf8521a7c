"""A throwaway certificate authority for the local stack: a CA, the broker's certificate and one per device.

Made with the `cryptography` package (EC P-256, 30 days), in one directory (mode 0700) whose files
follow device/simulate.py's --cert-dir convention: `<name>.cert.pem` and `<name>.private.key`.
Private keys are created with mode 0600 and never exist with wider permissions. Certificates are
reused while they stay valid for at least a day, so devices keep their identity across restarts.

A device of your own (an SDK sample, mosquitto_pub, paho) gets a certificate of the stack's CA with

    python -m local.pki issue motor-042 [--out DIR] [--state-dir .local-stack]

which prints where the certificate, key and CA are, and how to reach the running stack's broker.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local.options import STATE_DIR

VALIDITY = datetime.timedelta(days=30)
REUSE_MARGIN = datetime.timedelta(days=1)
"""A certificate expiring sooner than this is issued again."""
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""Certificates are valid from a little before now: a peer's clock may be behind."""
CA_NAME = "Local stack CA"
SERVER_NAME = "server"
SERVER_HOSTS = ("127.0.0.1", "localhost")
NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")
"""An identity is an AWS IoT thing name (it names files and topics: no '/', no '.')."""


@dataclass(frozen=True, slots=True)
class _Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


class LocalPki:
    """The stack's certificate authority in `directory`; `ensure()` issues what is missing or expiring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert_path(self) -> Path:
        return self.cert_path(SERVER_NAME)

    @property
    def server_key_path(self) -> Path:
        return self.key_path(SERVER_NAME)

    def cert_path(self, name: str) -> Path:
        return self.directory / f"{name}.cert.pem"

    def key_path(self, name: str) -> Path:
        return self.directory / f"{name}.private.key"

    @property
    def _ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    def ensure(self, names: Iterable[str]) -> None:
        """The CA, the broker's certificate and one client certificate (CN = name) per name, valid a day or more."""
        names = list(names)
        for name in names:
            if NAME.fullmatch(name) is None or name == SERVER_NAME:
                raise ValueError(f"{name!r} cannot name a device certificate: use letters, digits, ':', '_' and '-'")
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # before any key is written into it
        with self._locked():
            now = datetime.datetime.now(datetime.UTC)
            ca = self._load(self.ca_path, self._ca_key_path, None, now)
            renewed = ca is None
            if ca is None:
                ca = self._issue_ca(now)
            server = None if renewed else self._load(self.server_cert_path, self.server_key_path, ca, now)
            if server is None:
                self._issue(SERVER_NAME, ca, now, server=True)
            for name in names:
                if renewed or self._load(self.cert_path(name), self.key_path(name), ca, now) is None:
                    self._issue(name, ca, now, server=False)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # The stack and a simulator started beside it may ensure certificates at the same time.
        descriptor = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    # -- reading what is there ----------------------------------------------------------------------------

    @staticmethod
    def _load(cert_path: Path, key_path: Path, issuer: _Issued | None, now: datetime.datetime) -> _Issued | None:
        """The pair if it is usable: a P-256 key matching the certificate, signed by `issuer`
        (self-signed when None), valid now and for REUSE_MARGIN more; None otherwise."""
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError):
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            return None
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return None
        if key.public_key().public_numbers() != public_key.public_numbers():
            return None
        if not cert.not_valid_before_utc <= now or cert.not_valid_after_utc - now < REUSE_MARGIN:
            return None
        try:
            cert.verify_directly_issued_by(issuer.cert if issuer is not None else cert)
        except (ValueError, TypeError, InvalidSignature):
            return None
        return _Issued(cert, key)

    # -- issuing ------------------------------------------------------------------------------------------

    def _issue_ca(self, now: datetime.datetime) -> _Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        cert = (
            _builder(subject, subject, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self._write(self._ca_key_path, self.ca_path, cert, key)
        return _Issued(cert, key)

    def _issue(self, name: str, ca: _Issued, now: datetime.datetime, *, server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost" if server else name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(subject, ca.cert.subject, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                critical=False,
            )
        )
        if server:
            hosts: list[x509.GeneralName] = [
                x509.IPAddress(IPv4Address(host)) if host[0].isdigit() else x509.DNSName(host) for host in SERVER_HOSTS
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(hosts), critical=False)
        cert = builder.sign(ca.key, hashes.SHA256())
        self._write(self.key_path(name), self.cert_path(name), cert, key)

    def _write(self, key_path: Path, cert_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        # The key first: a certificate is only ever next to its own key (a crash in between leaves
        # a pair that does not match, which the next ensure() issues again).
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _replace(key_path, key_pem, 0o600)
        _replace(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with `mode` from its creation, then rename it over `path`.

    O_CREAT would keep the permissions of a file that exists already; a fresh file (O_EXCL) and
    rename give a key the right mode whatever was there before, and readers never see half a file.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def issue(directory: Path, name: str, out: Path | None = None) -> tuple[Path, Path, Path]:
    """A device certificate (CN = `name`) of the CA in `directory`: (certificate, key, CA), copied into `out`."""
    pki = LocalPki(directory)
    pki.ensure([name])
    files = (pki.cert_path(name), pki.key_path(name), pki.ca_path)
    if out is None:
        return files
    out.mkdir(parents=True, exist_ok=True)
    cert, key, ca = (out / path.name for path in files)
    for source, copy in zip(files, (cert, key, ca), strict=True):
        _replace(copy, source.read_bytes(), 0o600 if copy == key else 0o644)
    return cert, key, ca


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.pki", description="Certificates of the local stack's CA for devices of your own."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    issue_parser = commands.add_parser("issue", help="a certificate and key for a device (CN and client id = its id)")
    issue_parser.add_argument("device_id", help="the motor id, e.g. motor-042 (its thing name and MQTT client id)")
    issue_parser.add_argument("--out", type=Path, help="also copy the certificate, key (mode 0600) and CA here")
    issue_parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="the local stack's state directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        cert, key, ca = issue(args.state_dir / "pki", args.device_id, args.out)
    except (ValueError, OSError) as exc:
        print(f"python -m local.pki: {exc}", file=sys.stderr)
        return 2
    print(f"certificate {cert}\nkey         {key}\nCA          {ca}")
    try:
        broker = json.loads((args.state_dir / "stack.json").read_text())["broker"]
        print(f"broker      {broker['host']}:{broker['port']} ({broker['kind']}), client id {args.device_id}")
    except (OSError, ValueError, KeyError):
        print("broker      no local stack is running: start one (python device/simulate.py), then see its stack.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
