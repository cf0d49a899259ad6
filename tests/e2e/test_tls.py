"""TLS on every listener with a configured certificate (issue 2 §6), via trustme."""

from __future__ import annotations

import poplib
import smtplib
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mailbag.testing.process import ServeProcess

PASSWORD = "tls-password"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _config(tmp: Path, ca: trustme.CA, extra: str = "") -> Path:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for pem in cert.cert_chain_pems[1:]:
        with open(cert_path, "ab") as f:
            f.write(pem.bytes())
    cfg = tmp / "mailbag.toml"
    cfg.write_text(f'[tls]\ncert = "{cert_path}"\nkey = "{key_path}"\n{extra}')
    return cfg


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("tls")
    # plaintext_auth_loopback = false makes this loopback server behave like a
    # remote one for the cleartext-password rule, so the refusal is tested on
    # a real socket (tests may only use 127.0.0.1).
    cfg = _config(tmp, ca, "plaintext_auth_loopback = false\n")
    server = ServeProcess(tmp / "data", config=cfg).start()
    server.add_user("alice", PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_pop3_stls_then_login(tls_server: ServeProcess, client_ctx: ssl.SSLContext) -> None:
    pop = poplib.POP3("localhost", tls_server.port("pop3"), timeout=10)
    caps = pop.capa()
    assert "STLS" in caps
    # RFC 5034 §4 / RFC 2595: no cleartext passwords before TLS.
    assert "USER" not in caps
    with pytest.raises(poplib.error_proto, match=r"AUTH|disallowed|TLS"):
        pop.user("alice")
    pop.stls(client_ctx)
    assert "STLS" not in pop.capa()
    pop.user("alice")
    pop.pass_(PASSWORD)
    assert pop.stat() == (0, 0)
    pop.quit()


def test_pop3_plaintext_refused_before_tls(tls_server: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port("pop3")), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"AUTH PLAIN AGFsaWNlAHRscy1wYXNzd29yZA==\r\n")
        reply = f.readline()
        assert reply.startswith(b"-ERR"), reply


def test_pop3s_implicit_tls(tls_server: ServeProcess, client_ctx: ssl.SSLContext) -> None:
    pop = poplib.POP3_SSL("localhost", tls_server.port("pop3s"), context=client_ctx, timeout=10)
    pop.user("alice")
    pop.pass_(PASSWORD)
    assert pop.stat() == (0, 0)
    sock = pop.sock
    assert isinstance(sock, ssl.SSLSocket)
    assert sock.version() in ("TLSv1.2", "TLSv1.3")
    pop.quit()


def test_tls_1_1_refused(tls_server: ServeProcess, ca: trustme.CA) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    try:
        with warnings.catch_warnings():  # deprecated on purpose: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        poplib.POP3_SSL("localhost", tls_server.port("pop3s"), context=ctx, timeout=10)


def test_smtp_starttls(tls_server: ServeProcess, client_ctx: ssl.SSLContext) -> None:
    with smtplib.SMTP("localhost", tls_server.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("client")
        assert smtp.has_extn("starttls")
        smtp.starttls(context=client_ctx)
        smtp.ehlo("client")
        assert not smtp.has_extn("starttls")
        smtp.sendmail("a@example.net", ["alice@localhost"], b"Subject: tls\r\n\r\nhi\r\n")
    pop = poplib.POP3_SSL("localhost", tls_server.port("pop3s"), context=client_ctx, timeout=10)
    pop.user("alice")
    pop.pass_(PASSWORD)
    _, lines, _ = pop.retr(1)
    assert b"with ESMTPS" in b"\r\n".join(lines)
    pop.dele(1)
    pop.quit()


@pytest.mark.parametrize(
    ("proto", "command", "after", "check"),
    [
        ("pop3", b"STLS", b"CAPA", b"CAPA"),
        ("smtp", b"STARTTLS", b"RSET", b"NOOP"),
        ("imap", b"a STARTTLS", b"b CAPABILITY", b"c NOOP"),
    ],
)
def test_pipelined_bytes_after_starttls_never_run(
    tls_server: ServeProcess,
    client_ctx: ssl.SSLContext,
    proto: str,
    command: bytes,
    after: bytes,
    check: bytes,
) -> None:
    """Bytes sent with STARTTLS/STLS in one packet are discarded, not run after the upgrade."""
    raw = socket.create_connection(("127.0.0.1", tls_server.port(proto)), timeout=10)
    f = raw.makefile("rb")
    f.readline()  # greeting
    if proto == "smtp":
        raw.sendall(b"EHLO x\r\n")
        while not f.readline().startswith(b"250 "):
            pass
    raw.sendall(command + b"\r\n" + after + b"\r\n")
    reply = f.readline()
    assert reply[:3] in (b"+OK", b"220") or reply.startswith(b"a OK"), reply
    tls = client_ctx.wrap_socket(raw, server_hostname="localhost")
    tls.settimeout(1.5)
    # The injected command must not have been answered over TLS.
    with pytest.raises(TimeoutError):
        data = tls.recv(4096)
        if not data:
            raise AssertionError("server closed instead of staying usable")
        raise AssertionError(f"injected command was answered: {data!r}")
    tls.settimeout(10)
    tls.sendall(check + b"\r\n")
    answer = tls.recv(4096)
    assert answer[:3] in (b"+OK", b"250") or answer.startswith(b"c OK"), answer
    tls.close()


def test_self_signed_certificate_made_on_first_start(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "data") as server:
        cert = tmp_path / "data" / "tls" / "cert.pem"
        ctx = ssl.create_default_context(cafile=str(cert))
        pop = poplib.POP3_SSL("localhost", server.port("pop3s"), context=ctx, timeout=10)
        pop.quit()
        fp = next(line for line in server.stdout_lines if "fingerprint" in line)
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        import hashlib

        assert hashlib.sha256(der).hexdigest().upper()[:8] in fp.replace(":", "")


def test_imap_logindisabled_then_starttls(
    tls_server: ServeProcess, client_ctx: ssl.SSLContext
) -> None:
    """RFC 9051 §6.2.3 / §11.1: no cleartext LOGIN before TLS; STARTTLS then works."""
    import imaplib

    imap = imaplib.IMAP4("localhost", tls_server.port("imap"), timeout=10)
    assert "LOGINDISABLED" in imap.capabilities
    assert "STARTTLS" in imap.capabilities
    assert not any(c.startswith("AUTH=") for c in imap.capabilities)
    # imaplib itself would refuse to send LOGIN; send it anyway.
    typ, data = imap._simple_command("LOGIN", "alice", imap._quote(PASSWORD))
    assert typ == "NO" and b"[PRIVACYREQUIRED]" in data[0]
    imap.starttls(client_ctx)
    assert "LOGINDISABLED" not in imap.capabilities
    assert "STARTTLS" not in imap.capabilities
    imap.login("alice", PASSWORD)
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()


def test_imaps_implicit_tls(tls_server: ServeProcess, client_ctx: ssl.SSLContext) -> None:
    import imaplib

    imap = imaplib.IMAP4_SSL("localhost", tls_server.port("imaps"), ssl_context=client_ctx)
    imap.login("alice", PASSWORD)
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
