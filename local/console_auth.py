"""The console's sign-in on one machine: a JWT issuer with a key of its own, and the checks API Gateway makes.

`LocalIssuer` stands in for the Cognito user pool: an RSA key made for each run, its public half as a
JWKS, and RS256-signed access and ID tokens shaped like Cognito's (`username`, `cognito:groups`,
`client_id` or `aud`, `token_use`). `JwtVerifier` does what an HTTP API's JWT authorizer does before the
function runs (docs/console.md, "Authentication and authorization"): the Authorization header, with or
without "Bearer "; a three-part JWT signed with RS256 by a key of the issuer's JWKS, found by `kid`; `iss`
the issuer; `aud` one of the audiences, or `client_id` one when there is no `aud`; `exp` in the future,
`nbf` and `iat` not. `claims_context` then hands the claims on as API Gateway's payload 2.0 does: every
value a string, a list as "[a b]".
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ACCESS_SCOPES = "openid email profile"


class Unauthorized(Exception):
    """The token does not verify; the message is what API Gateway's www-authenticate header would say."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _integer(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class LocalUser:
    username: str
    groups: tuple[str, ...]

    @property
    def sub(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"local-console:{self.username}"))


OPERATOR = LocalUser("local-operator", ("operators",))
VIEWER = LocalUser("local-viewer", ("viewers",))


class LocalIssuer:
    """Signs tokens with a key that lives as long as the process."""

    def __init__(self, issuer: str, client_id: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.kid = secrets.token_hex(8)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": _integer(numbers.n)}
        return {"keys": [key | {"e": _integer(numbers.e)}]}

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        header = {"kid": kid or self.kid, "alg": "RS256"}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def claims(self, user: LocalUser, kind: str, lifetime_s: int, now_s: int | None = None) -> dict[str, Any]:
        """Claims as Cognito's access token (`kind` "access": client_id, username, scope) or ID token ("id": aud,
        cognito:username) has."""
        now = int(time.time()) if now_s is None else now_s
        common = {
            "sub": user.sub,
            "cognito:groups": list(user.groups),
            "iss": self.issuer,
            "token_use": kind,
            "auth_time": now,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": str(uuid.uuid4()),
        }
        if kind == "id":
            return common | {
                "aud": self.client_id,
                "cognito:username": user.username,
                "email": f"{user.username}@localhost",
            }
        return common | {"client_id": self.client_id, "username": user.username, "scope": ACCESS_SCOPES, "version": 2}

    def tokens(self, user: LocalUser, lifetime_s: int) -> dict[str, Any]:
        """What the token endpoint answers: an access and an ID token for the user."""
        return {
            "access_token": self.sign(self.claims(user, "access", lifetime_s)),
            "id_token": self.sign(self.claims(user, "id", lifetime_s)),
            "token_type": "Bearer",
            "expires_in": lifetime_s,
        }


class JwtVerifier:
    """The checks of an HTTP API's JWT authorizer, against one issuer's JWKS and the authorizer's audiences."""

    def __init__(self, issuer: str, audiences: Iterable[str], jwks: dict[str, Any]) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self._keys = {key["kid"]: key for key in jwks.get("keys", ()) if key.get("kty") == "RSA" and "kid" in key}

    def verify(self, authorization: str | None, now_s: float | None = None) -> dict[str, Any]:
        """The token's claims, or Unauthorized naming the first check it fails."""
        if not authorization:
            raise Unauthorized("no token in the Authorization header")
        token = authorization[7:] if authorization[:7].lower() == "bearer " else authorization
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise Unauthorized("the token is not a JWT")
        try:
            header, claims = (json.loads(unb64url(part)) for part in parts[:2])
            signature = unb64url(parts[2])
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unauthorized("the token is not a JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Unauthorized("the token is not a JWT")
        self._check_signature(header, f"{parts[0]}.{parts[1]}".encode(), signature)
        self._check_claims(claims, time.time() if now_s is None else now_s)
        return claims

    def _check_signature(self, header: dict[str, Any], signing_input: bytes, signature: bytes) -> None:
        if header.get("alg") != "RS256":
            raise Unauthorized(f"the token's algorithm {header.get('alg')!r} is not RS256")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise Unauthorized("the token's kid is not in the issuer's JWKS")
        public = rsa.RSAPublicNumbers(
            int.from_bytes(unb64url(key["e"]), "big"), int.from_bytes(unb64url(key["n"]), "big")
        ).public_key()
        try:
            public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise Unauthorized("the token's signature does not verify") from exc

    def _check_claims(self, claims: dict[str, Any], now_s: float) -> None:
        if claims.get("iss") != self.issuer:
            raise Unauthorized("the token does not have a valid issuer")
        audience = claims.get("aud") if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        if not self.audiences.intersection(str(item) for item in audiences):
            raise Unauthorized("the token does not have a valid audience")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now_s:
            raise Unauthorized("the token has expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float) or value > now_s):
                raise Unauthorized(f"the token's {name} is in the future")


def claims_context(claims: dict[str, Any]) -> dict[str, str]:
    """requestContext.authorizer.jwt.claims as API Gateway's payload 2.0 carries them: every value a string."""
    return {name: _flat(value) for name, value in claims.items()}


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_flat(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{_flat(item)}" for key, item in value.items()) + "]"
    return str(value)


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: the challenge is base64url(SHA-256(verifier)), unpadded."""
    return secrets.compare_digest(b64url(hashlib.sha256(verifier.encode()).digest()), challenge)
