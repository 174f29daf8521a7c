"""`python -m local.pki issue`: a certificate of the local stack's CA for a device of the user's own."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from local import pki


def test_issue_writes_a_certificate_of_the_stacks_ca_and_a_private_key_only_the_user_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, out = tmp_path / "state", tmp_path / "device"

    assert pki.main(["issue", "motor-042", "--out", str(out), "--state-dir", str(state)]) == 0

    cert = x509.load_pem_x509_certificate((out / "motor-042.cert.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((state / "pki" / "ca.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "motor-042"
    cert.verify_directly_issued_by(ca)
    assert (out / "ca.pem").read_bytes() == (state / "pki" / "ca.pem").read_bytes()
    assert stat.S_IMODE((out / "motor-042.private.key").stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert f"certificate {out / 'motor-042.cert.pem'}" in printed
    assert "no local stack is running" in printed


def test_issue_tells_the_running_stacks_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"broker": {"host": "127.0.0.1", "port": 8999, "kind": "x"}}))

    assert pki.main(["issue", "pump-7", "--state-dir", str(tmp_path)]) == 0

    assert "broker      127.0.0.1:8999 (x), client id pump-7" in capsys.readouterr().out


def test_issue_refuses_a_name_that_is_no_thing_name_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pki.main(["issue", "motors/+", "--state-dir", str(tmp_path)]) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "cannot name a device certificate" in error
