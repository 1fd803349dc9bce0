"""Accounts, sign-in throttle, sessions, CSRF, API tokens, the audit chain, period locks and corrections."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from flows.access import accounts, locks
from flows.access import trail as audit
from flows.kernel.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, PeriodLocked, TooManyAttempts
from flows.waste import corrections, declarations
from models import AuditLog, Declaration, LoginFailure, User
from tests.world import NOW, PASSWORD, build_world


def test_passwords_are_hashed_with_argon2(session: Session) -> None:
    build_world(session, with_tokens=False)
    user = session.exec(select(User).where(User.username == "ent1")).one()
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_user_scope_is_required_and_checked(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    with pytest.raises(InvalidInput) as exc:
        accounts.create_user(session=session, username="b2", password=PASSWORD, role="bureau", now=NOW)
    assert exc.value.field == "scope_adcode"
    with pytest.raises(InvalidInput) as exc:
        accounts.create_user(
            session=session, username="b2", password=PASSWORD, role="bureau", now=NOW, scope_adcode="999999"
        )
    assert exc.value.field == "scope_adcode"
    with pytest.raises(InvalidInput) as exc:
        accounts.create_user(
            session=session, username="p2", password=PASSWORD, role="park_manager", now=NOW, park_id=w.park_a + 100
        )
    assert exc.value.field == "park_id"
    with pytest.raises(InvalidInput, match="password"):
        accounts.create_user(session=session, username="short", password="abc", role="admin", now=NOW)
    with pytest.raises(InvalidInput, match="role"):
        accounts.create_user(session=session, username="x", password=PASSWORD, role="emperor", now=NOW)
    with pytest.raises(Conflict):
        accounts.create_user(session=session, username="ENT1", password=PASSWORD, role="admin", now=NOW)


def test_authenticate_and_throttle(session: Session) -> None:
    build_world(session, with_tokens=False)
    assert accounts.authenticate(session=session, username="ent1", password=PASSWORD, client="t", now=NOW).id
    for i in range(accounts.THROTTLE_LIMIT):
        with pytest.raises(NotAuthenticated):
            accounts.authenticate(session=session, username="ent1", password=f"wrong{i}", client="t", now=NOW)
    # Even the right password is refused while throttled ...
    with pytest.raises(TooManyAttempts):
        accounts.authenticate(session=session, username="ent1", password=PASSWORD, client="t", now=NOW)
    # ... and accepted once the window has passed, which clears the count.
    later = NOW + accounts.THROTTLE_WINDOW + timedelta(seconds=1)
    assert accounts.authenticate(session=session, username="ent1", password=PASSWORD, client="t", now=later).id
    assert session.exec(select(LoginFailure).where(LoginFailure.username == "ent1")).all() == []


def test_unknown_user_and_disabled_user_refused(session: Session) -> None:
    build_world(session, with_tokens=False)
    with pytest.raises(NotAuthenticated):
        accounts.authenticate(session=session, username="nobody", password=PASSWORD, client="t", now=NOW)
    user = accounts.get_user(session=session, username="ent1")
    accounts.set_active(session=session, user=user, active=False, now=NOW)
    with pytest.raises(NotAuthenticated):
        accounts.authenticate(session=session, username="ent1", password=PASSWORD, client="t", now=NOW)


def test_sessions_expire_and_end(session: Session) -> None:
    build_world(session, with_tokens=False)
    user = accounts.get_user(session=session, username="park_a")
    raw, csrf = accounts.start_session(session=session, user=user, now=NOW)
    principal = accounts.resolve_session(session=session, raw=raw, now=NOW)
    assert principal is not None and principal.username == "park_a" and principal.csrf_token == csrf
    assert accounts.resolve_session(session=session, raw=raw, now=NOW + accounts.SESSION_LIFETIME) is None
    assert accounts.resolve_session(session=session, raw=raw + "x", now=NOW) is None
    accounts.end_session(session=session, raw=raw, now=NOW)
    assert accounts.resolve_session(session=session, raw=raw, now=NOW) is None


def test_token_revocation_and_disabling(client: TestClient, session: Session) -> None:
    w = build_world(session)
    headers = {"Authorization": f"Bearer {w.tokens['ent1']}"}
    assert client.get("/api/v1/me", headers=headers).json()["username"] == "ent1"
    created = client.post("/api/v1/tokens", json={"name": "ledger sync"}, headers=headers)
    assert created.status_code == 201
    second = created.json()
    assert second["token"].startswith("cf_") and second["prefix"] == second["token"][:10]
    listed = client.get("/api/v1/tokens", headers=headers).json()
    assert {t["name"] for t in listed} == {"test", "ledger sync"} and all("token" not in t for t in listed)
    other = {"Authorization": f"Bearer {second['token']}"}
    assert client.get("/api/v1/me", headers=other).status_code == 200
    # Another user cannot revoke it, the owner can, and then it stops working at once.
    assert (
        client.delete(
            f"/api/v1/tokens/{second['id']}", headers={"Authorization": f"Bearer {w.tokens['ent3']}"}
        ).status_code
        == 404
    )
    assert client.delete(f"/api/v1/tokens/{second['id']}", headers=headers).status_code == 204
    refused = client.get("/api/v1/me", headers=other)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    # Disabling the owner stops the remaining token too.
    admin = {"Authorization": f"Bearer {w.tokens['admin']}"}
    assert client.post("/api/v1/users/ent1/disable", headers=admin).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def _sign_in(client: TestClient, username: str, password: str = PASSWORD) -> int:
    page = client.get("/login")
    assert page.status_code == 200
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    return response.status_code


def test_web_sign_in_cookie_and_csrf(client: TestClient, session: Session) -> None:
    build_world(session, with_tokens=False)
    assert _sign_in(client, "ent1") == 303
    cookie = client.cookies.get("circuflow_session")
    assert cookie
    assert client.get("/api/v1/me").json()["username"] == "ent1"
    # A write through the cookie without its CSRF token is refused and changes nothing.
    before = session.exec(select(AuditLog)).all()
    refused = client.post("/api/v1/tokens", json={"name": "x"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    session.expire_all()
    assert len(session.exec(select(AuditLog)).all()) == len(before)
    raw, _, signature = cookie.rpartition(".")
    assert raw and signature  # the cookie carries the session token signed with the secret
    csrf = accounts.resolve_session(session=session, raw=raw, now=NOW).csrf_token  # type: ignore[union-attr]
    assert client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": str(csrf)}).status_code == 201
    # Sign out ends the session.
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set("circuflow_session", cookie)
    assert client.get("/api/v1/me").status_code == 401


def test_session_cookie_flags(client: TestClient, session: Session) -> None:
    build_world(session, with_tokens=False)
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/login", data={"username": "ent1", "password": PASSWORD, "csrf_token": token}, follow_redirects=False
    )
    set_cookie = [v for k, v in response.headers.multi_items() if k == "set-cookie" and "circuflow_session" in v][0]
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Secure" not in set_cookie
    secure = TestClient(client.app, base_url="https://testserver")
    page = secure.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = secure.post(
        "/login", data={"username": "ent1", "password": PASSWORD, "csrf_token": token}, follow_redirects=False
    )
    set_cookie = [v for k, v in response.headers.multi_items() if k == "set-cookie" and "circuflow_session" in v][0]
    assert "Secure" in set_cookie


def test_sign_in_form_needs_its_token(client: TestClient, session: Session) -> None:
    build_world(session, with_tokens=False)
    response = client.post(
        "/login", data={"username": "ent1", "password": PASSWORD, "csrf_token": "x"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "circuflow_session" not in client.cookies


def test_web_sign_in_throttle(client: TestClient, session: Session) -> None:
    build_world(session, with_tokens=False)
    for _ in range(accounts.THROTTLE_LIMIT):
        assert _sign_in(client, "bureau_pzh", "not the password") == 401
    assert _sign_in(client, "bureau_pzh") == 429
    assert "circuflow_session" not in client.cookies


def test_anonymous_sees_only_login_and_health(client: TestClient, session: Session) -> None:
    build_world(session, with_tokens=False)
    assert client.get("/healthz").status_code == 200
    assert client.get("/login").status_code == 200
    assert client.get("/api/v1/regions").status_code == 401
    assert client.get("/docs").status_code in (401, 303)
    home = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"].startswith("/login")


def test_audit_chain_detects_edits_behind_the_app(engine: Engine, session: Session, backend: str) -> None:
    w = build_world(session, with_tokens=False)
    decl = declarations.parse_declaration(
        {"enterprise_id": w.e1, "category_code": "SW02", "year": 2024, "generated_t": 50, "utilised_t": 40}
    )
    declarations.save_declaration(session=session, principal=w.principals["ent1"], decl=decl, now=NOW)
    declarations.save_declaration(
        session=session, principal=w.principals["ent1"], decl=decl.model_copy(update={"utilised_t": 45.0}), now=NOW
    )
    session.commit()
    entries = session.exec(select(AuditLog).order_by(col(AuditLog.id))).all()
    last = entries[-1]
    assert last.before is not None and last.after is not None
    assert last.table_name == "declaration" and last.before["utilised_t"] == 40 and last.after["utilised_t"] == 45
    assert last.user_id == w.users["ent1"] and str(last.channel) == "api" and last.enterprise_id == w.e1
    assert audit.verify_chain(session=session).ok
    # The application cannot rewrite history: the database refuses updates and deletes.
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET action = 'nothing' WHERE id = :id"), {"id": last.id})
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": last.id})
    # Someone with database rights drops the guard and edits a row: the chain shows where.
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET row_id = '999' WHERE id = :id"), {"id": entries[-2].id})
    session.expire_all()
    check = audit.verify_chain(session=session)
    assert not check.ok and check.broken_at == entries[-2].id and "content" in check.reason


def test_locked_period_refuses_writes_until_a_correction_is_approved(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    ent1, bureau_pzh, bureau_dy = w.principals["ent1"], w.principals["bureau_pzh"], w.principals["bureau_dy"]
    payload = {"enterprise_id": w.e1, "category_code": "SW01", "year": 2023, "generated_t": 100, "utilised_t": 90}
    with pytest.raises(Forbidden):
        locks.lock_period(session=session, principal=bureau_dy, adcode="510400", year=2023, now=NOW, confirmed=True)
    with pytest.raises(Forbidden):
        locks.lock_period(session=session, principal=ent1, adcode="510400", year=2023, now=NOW, confirmed=True)
    locks.lock_period(session=session, principal=bureau_pzh, adcode="510400", year=2023, now=NOW, confirmed=True)
    session.commit()
    with pytest.raises(PeriodLocked, match="locked for region 510400"):
        declarations.save_declaration(
            session=session, principal=ent1, decl=declarations.parse_declaration(payload), now=NOW
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="reason"):
        corrections.request_correction(
            session=session, principal=ent1, table="declaration", payload=payload, reason="  ", now=NOW
        )
    correction = corrections.request_correction(
        session=session,
        principal=ent1,
        table="declaration",
        payload=payload,
        reason="weighbridge recalibrated",
        now=NOW,
    )
    session.commit()
    stored = session.get(Declaration, {"id": w.decl_e1, "enterprise_id": w.e1})
    assert stored is not None and stored.utilised_t == 80  # nothing changes while it waits
    assert correction.id is not None
    with pytest.raises(Forbidden):
        corrections.decide_correction(
            session=session, principal=ent1, correction_id=correction.id, approve=True, note="", now=NOW
        )
    with pytest.raises(Exception, match="no correction"):
        corrections.decide_correction(
            session=session, principal=bureau_dy, correction_id=correction.id, approve=True, note="", now=NOW
        )
    corrections.decide_correction(
        session=session,
        principal=bureau_pzh,
        correction_id=correction.id,
        approve=True,
        note="checked the weighbridge certificate",
        now=NOW,
    )
    session.commit()
    session.expire_all()
    assert session.get(Declaration, {"id": w.decl_e1, "enterprise_id": w.e1}).utilised_t == 90  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        corrections.decide_correction(
            session=session, principal=bureau_pzh, correction_id=correction.id, approve=False, note="", now=NOW
        )
    actions = [e.action for e in session.exec(select(AuditLog).order_by(col(AuditLog.id))).all()]
    assert actions[-5:] == ["lock", "request_correction", "correction", "revise_figures", "approve_correction"]


def test_rejected_correction_changes_nothing(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    payload = {"enterprise_id": w.e1, "category_code": "SW01", "year": 2021, "generated_t": 1, "utilised_t": 1}
    correction = corrections.request_correction(
        session=session, principal=w.principals["ent1"], table="declaration", payload=payload, reason="typo", now=NOW
    )
    assert correction.id is not None
    corrections.decide_correction(
        session=session,
        principal=w.principals["bureau_sc"],
        correction_id=correction.id,
        approve=False,
        note="no evidence",
        now=NOW,
    )
    session.commit()
    assert session.exec(select(Declaration).where(Declaration.year == 2021)).all() == []


def test_correction_of_an_unlocked_year_is_refused(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    payload = {"enterprise_id": w.e3, "category_code": "SW01", "year": 2023, "generated_t": 1}
    with pytest.raises(Conflict, match="not locked"):
        corrections.request_correction(
            session=session, principal=w.principals["ent3"], table="declaration", payload=payload, reason="x", now=NOW
        )


def test_province_lock_covers_every_prefecture(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    locks.lock_period(
        session=session, principal=w.principals["bureau_sc"], adcode="510000", year=2024, now=NOW, confirmed=True
    )
    payload = {"enterprise_id": w.e3, "category_code": "SW01", "year": 2024, "generated_t": 1}
    with pytest.raises(PeriodLocked):
        declarations.save_declaration(
            session=session, principal=w.principals["ent3"], decl=declarations.parse_declaration(payload), now=NOW
        )
    locks.unlock_period(session=session, principal=w.principals["bureau_sc"], adcode="510000", year=2024, now=NOW)
    assert declarations.save_declaration(
        session=session, principal=w.principals["ent3"], decl=declarations.parse_declaration(payload), now=NOW
    ).id


def test_bad_declaration_names_the_field(session: Session) -> None:
    w = build_world(session, with_tokens=False)
    cases: dict[str, dict[str, object]] = {
        "generated_t": {"generated_t": -5},
        "category_code": {"category_code": "SW99"},
        "year": {"year": "twenty"},
        "utilised_prior_t": {"utilised_t": 1, "utilised_prior_t": 2},
    }
    for field, change in cases.items():
        data = {"enterprise_id": w.e1, "category_code": "SW02", "year": 2024, **change}
        with pytest.raises(InvalidInput) as exc:
            decl = declarations.parse_declaration(data, row=7)
            declarations.save_declaration(session=session, principal=w.principals["ent1"], decl=decl, now=NOW)
        assert exc.value.field == field, field
    session.rollback()
    assert session.exec(select(Declaration).where(Declaration.year == 2024)).all() == []


def test_forged_cookie_signature_refused(client: TestClient, session: Session) -> None:
    build_world(session, with_tokens=False)
    assert _sign_in(client, "ent1") == 303
    cookie = client.cookies.get("circuflow_session")
    assert cookie and client.get("/api/v1/me").status_code == 200
    raw, _, _ = cookie.rpartition(".")
    for forged in (raw + "." + "0" * 32, raw):
        client.cookies.clear()
        client.cookies.set("circuflow_session", forged)
        assert client.get("/api/v1/me").status_code == 401
    client.cookies.clear()
    client.cookies.set("circuflow_session", cookie)
    assert client.get("/api/v1/me").status_code == 200


def test_secret_is_required_outside_development() -> None:
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError, match="CIRCUFLOW_SECRET_KEY"):
        Settings(environment="production", database_url="sqlite://")
    with pytest.raises(ValidationError, match="CIRCUFLOW_SECRET_KEY"):
        Settings(environment="production", database_url="sqlite://", secret_key="short")
    assert Settings(environment="production", database_url="sqlite://", secret_key="s" * 40).secret_key
    assert Settings(environment="development", database_url="sqlite://").secret_key  # the demo runs as is
