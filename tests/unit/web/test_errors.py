"""The one error shape (shared/errors.py via shared/web.py), request IDs, and bearer tokens."""

from __future__ import annotations

import time

import jwt
import marshmallow as ma
import pytest
from flask import request
from flask_smorest import Blueprint

from shared.auth import ISSUER, Principal, issue_token, require_auth, verify_token
from shared.config import Config
from shared.errors import DomainError, SlotFull, Unauthorized
from shared.web import create_base_app

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4
SHAPE = {"code", "status", "error", "message"}


class EchoSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True)
    count = ma.fields.Integer()


class TeapotError(DomainError):
    status = 418
    reason = "teapot"


@pytest.fixture
def app():
    app, api = create_base_app("t", "T", config=Config(jwt_secret=SECRET))
    blp = Blueprint("echo", __name__, url_prefix="/echo")

    @blp.route("", methods=["POST"])
    @blp.arguments(EchoSchema)
    def echo(args):
        return {"got": args}

    api.register_blueprint(blp)

    @app.get("/only-get")
    def only_get():
        return {"ok": True}

    @app.get("/full")
    def full():
        raise SlotFull("The 17:00 slot on 2026-11-28 is full")

    @app.get("/teapot")
    def teapot():
        raise TeapotError("short and stout", errors={"spout": ["bent"]})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret-internal-detail at /srv/app.py line 42")

    @app.post("/plain-json")
    def plain_json():
        return {"got": request.get_json()}

    @app.get("/admin")
    @require_auth("admin")
    def admin_only():
        return {"ok": True}

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def assert_shape(resp, status: int, reason: str) -> dict:
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert SHAPE <= set(body), body
    assert body["code"] == status
    assert body["error"] == reason
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["status"], str) and body["status"]
    return body


def test_unknown_route_is_404_json(client):
    body = assert_shape(client.get("/no/such/route"), 404, "not_found")
    assert body["status"] == "Not Found"
    assert "errors" not in body


def test_wrong_method_is_405_with_allow(client):
    resp = client.delete("/only-get")
    assert_shape(resp, 405, "method_not_allowed")
    allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert "GET" in allowed
    assert "DELETE" not in allowed


def test_domain_error_status_and_reason(client):
    body = assert_shape(client.get("/full"), 409, "slot_full")
    assert body["status"] == "Conflict"
    assert body["message"] == "The 17:00 slot on 2026-11-28 is full"
    assert "errors" not in body


def test_domain_error_subclass_with_errors(client):
    body = assert_shape(client.get("/teapot"), 418, "teapot")
    assert body["message"] == "short and stout"
    assert body["errors"] == {"spout": ["bent"]}


def test_unexpected_exception_is_500_without_details(client):
    resp = client.get("/boom")
    body = assert_shape(resp, 500, "internal_error")
    text = resp.get_data(as_text=True)
    assert "Traceback" not in text
    assert "secret-internal-detail" not in text
    assert "RuntimeError" not in text
    assert "app.py" not in text
    assert "errors" not in body


def test_smorest_unknown_field_is_400_validation_error(client):
    resp = client.post("/echo", json={"name": "a", "extra": 1})
    body = assert_shape(resp, 400, "validation_error")
    assert set(body["errors"]) == {"extra"}
    assert isinstance(body["errors"]["extra"], list)


def test_smorest_missing_and_wrong_type_fields_keyed_by_name(client):
    resp = client.post("/echo", json={"count": "many"})
    body = assert_shape(resp, 400, "validation_error")
    assert set(body["errors"]) == {"name", "count"}


def test_smorest_valid_body_passes(client):
    resp = client.post("/echo", json={"name": "a", "count": 2})
    assert resp.status_code == 200
    assert resp.get_json() == {"got": {"name": "a", "count": 2}}


def test_malformed_json_in_smorest_view_is_400_in_shape(client):
    resp = client.post("/echo", data='{"name": ', content_type="application/json")
    assert resp.status_code == 400
    body = resp.get_json()
    assert SHAPE <= set(body)
    assert body["code"] == 400
    assert "Traceback" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/echo", "/plain-json"])
def test_malformed_json_reason_is_malformed_json(client, path):
    """shared/errors.py maps a JSON decode failure to the reason `malformed_json`."""
    resp = client.post(path, data='{"name": ', content_type="application/json")
    body = assert_shape(resp, 400, "malformed_json")
    assert body["message"] == "The request body is not valid JSON"


def test_every_response_has_a_request_id(client):
    seen = set()
    for resp in (
        client.get("/healthz"),
        client.get("/no/such/route"),
        client.get("/boom"),
        client.get("/full"),
        client.post("/echo", json={"x": 1}),
    ):
        rid = resp.headers.get("X-Request-ID")
        assert rid, resp.status_code
        seen.add(rid)
    assert len(seen) == 5  # a fresh one each time


@pytest.mark.parametrize("rid", ["abc-123", "req:7.a_b", "x" * 128])
def test_safe_request_id_is_echoed(client, rid):
    resp = client.get("/healthz", headers={"X-Request-ID": rid})
    assert resp.headers["X-Request-ID"] == rid
    resp = client.get("/full", headers={"X-Request-ID": rid})
    assert resp.headers["X-Request-ID"] == rid


@pytest.mark.parametrize("rid", ["x" * 129, "y" * 300, "has space", "a<script>", "ümlaut", "a/b"])
def test_unsafe_request_id_is_replaced(client, rid):
    resp = client.get("/healthz", headers={"X-Request-ID": rid})
    replaced = resp.headers["X-Request-ID"]
    assert replaced and replaced != rid
    assert len(replaced) <= 128
    assert " " not in replaced


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


# --- bearer tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["patient", "admin"])
def test_token_round_trip(role):
    token = issue_token(SECRET, 60, "u1", "a@example.com", role)
    principal = verify_token(SECRET, token)
    assert principal == Principal(user_id="u1", email="a@example.com", role=role)
    assert principal.is_admin == (role == "admin")


def test_expired_token_rejected():
    token = issue_token(SECRET, -5, "u1", "a@example.com", "patient")
    with pytest.raises(Unauthorized) as info:
        verify_token(SECRET, token)
    assert info.value.status == 401
    assert info.value.reason == "unauthorized"
    assert "expired" in info.value.message


def test_wrong_secret_rejected():
    token = issue_token(SECRET, 60, "u1", "a@example.com", "admin")
    with pytest.raises(Unauthorized):
        verify_token("another-secret-" + "0123456789abcdef" * 4, token)


def test_unknown_role_rejected():
    token = issue_token(SECRET, 60, "u1", "a@example.com", "root")
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token)


def _claims(**overrides) -> dict:
    now = int(time.time())
    claims = {"sub": "u1", "email": "e", "role": "admin", "iat": now, "exp": now + 60}
    claims["iss"] = ISSUER
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(iss="someone-else"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(role=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(), None, algorithm="none"),
        jwt.encode(_claims(), SECRET, algorithm="HS512"),
        "not-a-token",
        "",
    ],
    ids=["issuer", "no-exp", "no-sub", "no-role", "alg-none", "hs512", "garbage", "empty"],
)
def test_invalid_tokens_rejected(token):
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token)


def test_tampered_token_rejected():
    token = issue_token(SECRET, 60, "u1", "a@example.com", "patient")
    header, payload, signature = token.split(".")
    forged = jwt.encode(_claims(role="admin"), "x" * 64, algorithm="HS256").split(".")[1]
    with pytest.raises(Unauthorized):
        verify_token(SECRET, f"{header}.{forged}.{signature}")


def test_require_auth_through_the_app(client):
    assert_shape(client.get("/admin"), 401, "unauthorized")
    assert_shape(client.get("/admin", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    patient = issue_token(SECRET, 60, "u1", "p@example.com", "patient")
    resp = client.get("/admin", headers={"Authorization": f"Bearer {patient}"})
    assert_shape(resp, 403, "forbidden")
    admin = issue_token(SECRET, 60, "u2", "a@example.com", "admin")
    resp = client.get("/admin", headers={"Authorization": f"Bearer {admin}"})
    assert resp.status_code == 200
    expired = issue_token(SECRET, -5, "u2", "a@example.com", "admin")
    resp = client.get("/admin", headers={"Authorization": f"Bearer {expired}"})
    assert_shape(resp, 401, "unauthorized")


@pytest.mark.parametrize(
    ("error", "names"),
    [
        (lambda: __import__("pymongo.errors").errors.AutoReconnect("gone"), "database"),
        (lambda: __import__("redis").exceptions.ConnectionError("gone"), "Redis"),
    ],
    ids=["mongodb", "redis"],
)
def test_a_database_error_no_layer_handled_is_a_503_not_a_500(error, names):
    from shared.config import Config
    from shared.web import create_base_app

    app, _ = create_base_app("dbdown", "T", config=Config())

    @app.get("/db")
    def db():
        raise error()

    resp = app.test_client().get("/db")
    body = assert_shape(resp, 503, "service_unavailable")
    assert names in body["message"] and "Traceback" not in resp.text
