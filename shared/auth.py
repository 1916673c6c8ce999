"""Bearer tokens (JWT, HS256), issued by the booking service and verified locally everywhere."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import wraps

import jwt
from flask import current_app, g, request

from .errors import Forbidden, Unauthorized

ALGORITHM = "HS256"
ISSUER = "slotbook"
ROLES = ("patient", "staff", "admin")
# The front desk's roles: book for anyone, see every appointment, move them through the visit.
DESK_ROLES = ("staff", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: from a verified token."""

    user_id: str
    email: str
    role: str

    @property
    def is_admin(self) -> bool:
        """True for the admin role."""
        return self.role == "admin"

    @property
    def at_desk(self) -> bool:
        """True for staff and admins: they book for anyone and see every appointment."""
        return self.role in DESK_ROLES


def issue_token(secret: str, ttl: int, user_id: str, email: str, role: str) -> str:
    """A signed access token for a user."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "email": email,
        "role": role,
        "iat": now,
        "exp": now + ttl,
        "iss": ISSUER,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# The one cache of authenticated answers: tokens verified already, by (secret, token). PyJWT
# checks a signature in Python on every call, and a client sends the same token with each
# request. What a token says and whether its signature holds never change; its time limits are
# checked again on every use, and a token outside them goes back through PyJWT for the precise
# answer. Only valid tokens are kept, and at most _MAX_VERIFIED of them.
_verified: dict[tuple[str, str], tuple[Principal, int, int]] = {}
_MAX_VERIFIED = 4096


def verify_token(secret: str, token: str) -> Principal:
    """The principal of a valid token; Unauthorized otherwise."""
    known = _verified.get((secret, token))
    if known is not None:
        principal, not_before, expires = known
        if not_before <= time.time() < expires:  # PyJWT's rules for iat, nbf, exp (no leeway)
            return principal
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The access token is not valid") from exc
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized("The access token is not valid")
    principal = Principal(user_id=str(claims["sub"]), email=str(claims.get("email", "")), role=role)
    not_before = max(int(claims["iat"]), int(claims.get("nbf", claims["iat"])))
    if len(_verified) >= _MAX_VERIFIED:
        _verified.clear()
    _verified[(secret, token)] = (principal, not_before, int(claims["exp"]))
    return principal


def current_principal() -> Principal:
    """The caller of this request; Unauthorized without a valid bearer token."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer token is required")
    principal = verify_token(current_app.config["SLOTBOOK"].jwt_secret, token.strip())
    g.principal = principal
    return principal


def require_auth(*roles: str):
    """Decorator: the view needs a valid token, of one of `roles` when given."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if roles and principal.role not in roles:
                raise Forbidden("This action needs the role: " + ", ".join(roles))
            return view(*args, **kwargs)

        return wrapper

    return decorator
