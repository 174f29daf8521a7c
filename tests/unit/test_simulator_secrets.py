"""The device simulator never prints a private key, whatever goes wrong, and refuses one that others can read.

Each case runs `python device/simulate.py` as a user would, with a freshly made key, and looks for
any line of the key's PEM body in everything the run printed.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import ROOT

THING = "motor-001"


def make_identity(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for THING and its EC P-256 private key (chmod 600), as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, THING)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{THING}.cert.pem", directory / f"{THING}.private.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def key_material(key_path: Path) -> list[str]:
    """The base64 lines of a PEM private key: any of them printed is a leak."""
    lines = [line.strip() for line in key_path.read_text().splitlines()]
    body = [line for line in lines if line and not line.startswith("-----")]
    assert body, f"{key_path} has no PEM body"
    return body


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the probe is closed


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "shared"), env.get("PYTHONPATH", "")])
    command = [sys.executable, "device/simulate.py", "--progress-every", "0", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


def assert_never_printed(key_path: Path, run: subprocess.CompletedProcess[str]) -> None:
    printed = run.stdout + run.stderr
    leaked = [line for line in key_material(key_path) if line in printed]
    assert not leaked, f"the run printed {len(leaked)} line(s) of the private key"


@pytest.fixture
def identity(tmp_path: Path) -> tuple[Path, Path]:
    return make_identity(tmp_path)


def test_a_dry_run_given_a_key_prints_readings_only(identity: tuple[Path, Path]) -> None:
    cert, key = identity
    run = simulate("--stdout", "--count", "2", "--interval", "0.01", "--cert", str(cert), "--key", str(key))

    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 2
    assert_never_printed(key, run)


def test_a_broker_that_does_not_answer_is_reported_without_the_key(identity: tuple[Path, Path]) -> None:
    cert, key = identity
    run = simulate(
        "--endpoint", "127.0.0.1", "--port", str(closed_port()), "--cert", str(cert), "--key", str(key),
        "--thing-name", THING, "--count", "1", "--connect-timeout", "2",
    )  # fmt: skip

    assert run.returncode == 1
    assert f"could not connect within 2 s: {THING}" in run.stderr
    assert_never_printed(key, run)


def test_a_key_other_users_can_read_is_refused_by_name_not_by_content(identity: tuple[Path, Path]) -> None:
    cert, key = identity
    key.chmod(0o644)

    run = simulate("--endpoint", "127.0.0.1", "--cert", str(cert), "--key", str(key), "--thing-name", THING)

    assert run.returncode == 2
    assert f"chmod 600 {key}" in run.stderr
    assert_never_printed(key, run)


@pytest.mark.parametrize("mistake", ["certificate and key swapped", "key that is no key"])
def test_files_tls_cannot_use_are_named_and_their_contents_never_printed(
    identity: tuple[Path, Path], tmp_path: Path, mistake: str
) -> None:
    """Given a certificate and key TLS refuses (swapped, or a damaged key),
    when the simulator builds its connection,
    then it names both files and how to fix them, exits 2, and prints nothing of either file.
    """
    cert, key = identity
    if mistake == "key that is no key":
        body = b64encode(secrets.token_bytes(240)).decode()
        marker = "-" * 5 + "BEGIN PRIVATE KEY" + "-" * 5  # built from parts: no tracked file holds a key header
        key.write_text(marker + "\n" + "\n".join(body[i : i + 64] for i in range(0, 320, 64)))
        given_cert, given_key = cert, key
    else:
        given_cert, given_key = key, tmp_path / "cert-as-key.pem"
        given_key.write_bytes(cert.read_bytes())
        given_key.chmod(0o600)

    run = simulate(
        "--endpoint", "127.0.0.1", "--port", str(closed_port()), "--cert", str(given_cert), "--key", str(given_key),
        "--thing-name", THING, "--count", "1", "--connect-timeout", "2",
    )  # fmt: skip

    assert run.returncode == 2, run.stderr
    assert f"cannot set up TLS with certificate {given_cert}, key {given_key}" in run.stderr
    assert "Traceback" not in run.stderr
    assert_never_printed(key, run)
