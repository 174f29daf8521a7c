"""The local console: the issuer's tokens, the checks API Gateway's JWT authorizer makes, the sign-in, the server."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from local.console_auth import (
    OPERATOR,
    VIEWER,
    JwtVerifier,
    LocalIssuer,
    Unauthorized,
    b64url,
    claims_context,
    unb64url,
)
from local.console_server import CLIENT_ID, ConsoleServer
from tests.conftest import FakeAws
from tests.support import LambdaContext, load_handler

ISSUER = "http://127.0.0.1:9/local-issuer"


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer(ISSUER, CLIENT_ID)


@pytest.fixture(scope="module")
def verifier(issuer: LocalIssuer) -> JwtVerifier:
    return JwtVerifier(ISSUER, [CLIENT_ID], issuer.jwks())


def access(issuer: LocalIssuer, **changes: Any) -> dict[str, Any]:
    return issuer.claims(VIEWER, "access", 3600) | changes


# --- the verifier: what API Gateway's JWT authorizer checks -----------------------------------------


def test_an_access_token_of_the_issuer_verifies_with_or_without_bearer(
    issuer: LocalIssuer, verifier: JwtVerifier
) -> None:
    token = issuer.sign(access(issuer))

    assert verifier.verify(f"Bearer {token}")["username"] == "local-viewer"
    assert verifier.verify(token)["cognito:groups"] == ["viewers"]


def test_an_id_token_verifies_by_its_audience(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    claims = verifier.verify(issuer.tokens(OPERATOR, 60)["id_token"])

    assert (claims["aud"], claims["cognito:username"], claims["token_use"]) == (CLIENT_ID, "local-operator", "id")


def test_a_token_signed_by_another_key_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    impostor = LocalIssuer(ISSUER, CLIENT_ID)
    forged = impostor.sign(access(issuer), kid=issuer.kid)  # the right kid, the wrong key

    with pytest.raises(Unauthorized, match="signature does not verify"):
        verifier.verify(f"Bearer {forged}")


def test_a_token_whose_claims_were_changed_after_signing_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    header, _, signature = issuer.sign(access(issuer)).split(".")
    promoted = b64url(json.dumps(access(issuer, **{"cognito:groups": ["operators"]})).encode())

    with pytest.raises(Unauthorized, match="signature does not verify"):
        verifier.verify(f"{header}.{promoted}.{signature}")


def test_an_unsigned_or_symmetrically_signed_token_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    payload = b64url(json.dumps(access(issuer)).encode())
    for alg in ("none", "HS256"):
        header = b64url(json.dumps({"alg": alg, "kid": issuer.kid}).encode())
        with pytest.raises(Unauthorized, match="not RS256"):
            verifier.verify(f"{header}.{payload}.")


def test_a_kid_not_in_the_jwks_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    with pytest.raises(Unauthorized, match="kid is not in the issuer's JWKS"):
        verifier.verify(issuer.sign(access(issuer), kid="unknown"))


def test_a_token_of_another_issuer_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    token = issuer.sign(access(issuer, iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"))

    with pytest.raises(Unauthorized, match="valid issuer"):
        verifier.verify(token)


@pytest.mark.parametrize(
    "changes",
    [
        {"client_id": "another-client"},
        {"aud": "another-client"},  # aud is evaluated when present, even with the right client_id
        {"aud": ["another-client", "and-another"]},
    ],
)
def test_a_token_for_another_audience_is_refused(
    issuer: LocalIssuer, verifier: JwtVerifier, changes: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized, match="valid audience"):
        verifier.verify(issuer.sign(access(issuer, **changes)))


def test_an_expired_token_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    now = int(time.time())
    token = issuer.sign(issuer.claims(VIEWER, "access", 3600, now_s=now - 7200))

    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)
    assert verifier.verify(token, now_s=now - 5400)["username"] == "local-viewer"  # within its hour


def test_a_token_not_yet_valid_is_refused(issuer: LocalIssuer, verifier: JwtVerifier) -> None:
    with pytest.raises(Unauthorized, match="nbf is in the future"):
        verifier.verify(issuer.sign(access(issuer, nbf=int(time.time()) + 600)))


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer abc.def", "Bearer a.b.c"])
def test_no_token_or_not_a_jwt_is_refused(verifier: JwtVerifier, header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(header)


def test_claims_reach_the_function_as_api_gateway_writes_them(issuer: LocalIssuer) -> None:
    context = claims_context(
        {"cognito:groups": ["operators", "viewers"], "exp": 1795783600, "username": "a", "x": True}
    )

    assert context == {"cognito:groups": "[operators viewers]", "exp": "1795783600", "username": "a", "x": "true"}


# --- the server -------------------------------------------------------------------------------------


class Recorded:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"motors": []}'}, None


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def server(tmp_path: Path, recorded: Recorded) -> Iterator[ConsoleServer]:
    static = tmp_path / "site"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "secret.txt").write_text("not for the page")
    console = ConsoleServer(recorded, tmp_path / "state", static_dir=static, port=0)
    console.start()
    yield console
    console.stop()


def fetch(url: str, *, token: str | None = None, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - the server on loopback
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def tokens(server: ConsoleServer) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(server.tokens_path.read_text())
    return loaded


def test_the_tokens_file_is_the_owners_alone_and_its_tokens_verify(server: ConsoleServer) -> None:
    document = tokens(server)

    assert stat.S_IMODE(server.tokens_path.stat().st_mode) == 0o600
    assert document["console_url"] == f"{server.url}/"
    for role, group in (("operator", "operators"), ("viewer", "viewers")):
        claims = server.verifier.verify(document[role]["access_token"])
        assert (claims["username"], claims["cognito:groups"]) == (document[role]["username"], [group])


def test_the_api_without_a_token_is_401_and_the_function_never_runs(server: ConsoleServer, recorded: Recorded) -> None:
    status, headers, body = fetch(f"{server.url}/motors")

    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    assert 'error="invalid_token"' in headers["www-authenticate"]
    assert recorded.events == []


def test_a_verified_request_reaches_the_function_as_a_payload_2_event(
    server: ConsoleServer, recorded: Recorded
) -> None:
    token = tokens(server)["viewer"]["access_token"]

    status, _, body = fetch(f"{server.url}/motors/motor-001/history?hours=2", token=token)

    assert (status, json.loads(body)) == (200, {"motors": []})
    (event,) = recorded.events
    assert (event["version"], event["routeKey"], event["rawPath"]) == (
        "2.0",
        "GET /motors/{id}/history",
        "/motors/motor-001/history",
    )
    assert event["pathParameters"] == {"id": "motor-001"}
    assert event["queryStringParameters"] == {"hours": "2"}
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert (claims["username"], claims["cognito:groups"]) == ("local-viewer", "[viewers]")


def test_an_unknown_route_is_404_without_the_function(server: ConsoleServer, recorded: Recorded) -> None:
    token = tokens(server)["operator"]["access_token"]

    assert fetch(f"{server.url}/motors/motor-001/delete", token=token)[0] == 404
    assert fetch(f"{server.url}/motors", token=token, data=b"{}")[0] == 404  # POST /motors is no route
    assert recorded.events == []


def test_the_page_and_its_settings_are_served_and_nothing_outside_its_folder(server: ConsoleServer) -> None:
    status, headers, body = fetch(f"{server.url}/")
    assert (status, body) == (200, b"<!doctype html><title>console</title>")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    config = json.loads(fetch(f"{server.url}/config.json")[2])
    assert config["api_url"] == server.url
    assert config["auth"]["client_id"] == CLIENT_ID
    assert fetch(f"{server.url}/../secret.txt")[0] == 404
    assert fetch(f"{server.url}/%2e%2e/secret.txt")[0] == 404


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(b"a-verifier-of-at-least-43-characters-long!!").decode().rstrip("=")
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def sign_in(server: ConsoleServer, role: str, challenge: str) -> str:
    """The authorization request and the user's button: the code the page gets back on its redirect."""
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": f"{server.url}/",
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "openid email profile",
    }
    page = fetch(f"{server.url}/oauth2/authorize?{urlencode(params)}")
    assert page[0] == 200
    assert b"Sign in as local-operator" in page[2]
    status, headers, _ = fetch(f"{server.url}/oauth2/authorize", data=urlencode(params | {"user": role}).encode())
    assert status == 302
    location = urlsplit(headers["Location"])
    answer = parse_qs(location.query)
    assert (f"{location.scheme}://{location.netloc}{location.path}", answer["state"]) == (f"{server.url}/", ["xyz"])
    return answer["code"][0]


def redeem(server: ConsoleServer, code: str, verifier: str) -> tuple[int, dict[str, Any]]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "redirect_uri": f"{server.url}/",
        "code_verifier": verifier,
    }
    status, _, body = fetch(f"{server.url}/oauth2/token", data=urlencode(form).encode())
    return status, json.loads(body)


def test_sign_in_with_pkce_gives_the_users_tokens_once(server: ConsoleServer) -> None:
    verifier, challenge = pkce()
    code = sign_in(server, "operator", challenge)

    status, answer = redeem(server, code, verifier)

    assert status == 200
    assert server.verifier.verify(answer["access_token"])["username"] == "local-operator"
    assert server.verifier.verify(answer["id_token"])["cognito:username"] == "local-operator"
    assert redeem(server, code, verifier) == (400, {"error": "invalid_grant"})  # a code is good once


def test_a_code_redeemed_without_its_verifier_gives_nothing(server: ConsoleServer) -> None:
    _, challenge = pkce()
    code = sign_in(server, "viewer", challenge)

    assert redeem(server, code, "another-verifier-" + "x" * 30) == (400, {"error": "invalid_grant"})


def test_sign_in_refuses_a_foreign_redirect_and_a_request_without_pkce(server: ConsoleServer) -> None:
    base = {"response_type": "code", "client_id": CLIENT_ID, "code_challenge_method": "S256", "code_challenge": "c"}
    foreign = base | {"redirect_uri": "https://evil.example/"}
    assert fetch(f"{server.url}/oauth2/authorize?{urlencode(foreign)}")[0] == 400
    plain = base | {"redirect_uri": f"{server.url}/", "code_challenge_method": "plain"}
    assert fetch(f"{server.url}/oauth2/authorize?{urlencode(plain)}")[0] == 400


def test_the_fleet_through_the_real_handler_with_the_viewers_token(
    aws: FakeAws, tmp_path: Path, lambda_context: LambdaContext
) -> None:
    console = load_handler("console")
    server = ConsoleServer(lambda event: (console.lambda_handler(event, lambda_context), None), tmp_path, port=0)
    server.start()
    try:
        viewer, operator = (tokens(server)[role]["access_token"] for role in ("viewer", "operator"))
        status, _, body = fetch(f"{server.url}/motors", token=viewer)
        assert (status, json.loads(body)["motors"]) == (200, [])
        action = json.dumps({"action": "acknowledge", "alarm": "predictive"}).encode()
        assert fetch(f"{server.url}/motors/motor-001/actions", token=viewer, data=action)[0] == 403
        assert fetch(f"{server.url}/motors/motor-001/actions", token=operator, data=action)[0] == 404  # no such motor
    finally:
        server.stop()


def test_unb64url_reverses_b64url() -> None:
    assert unb64url(b64url(b"\x00\xffabc")) == b"\x00\xffabc"
