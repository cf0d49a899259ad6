"""compute_facts throughput on typical mail (DEPENDENCIES.md: several thousand/s).

The threshold is far below what we measure (see the printed rate with -s) so a
busy CI machine does not fail it; it catches accidental quadratic behaviour.
"""

from __future__ import annotations

import time

import pytest

from mailbag.message import compute_facts


def typical_message() -> bytes:
    """About 7 KB: a relay chain, DKIM, multipart/alternative text + HTML."""
    header = "".join(
        f"Received: from relay{i}.example.net (relay{i}.example.net [192.0.2.{i}])\r\n"
        f"\tby mx.example.com with ESMTPS id abc{i}\r\n"
        f"\tfor <bob@example.com>; Mon, 2 Sep 2024 10:00:0{i} +0200\r\n"
        for i in range(6)
    )
    header += (
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;\r\n"
        "\th=from:to:subject:date:message-id; bh=abcdefghijklmnopqrstuvwxyz0123456789ABC=;\r\n"
        "\tb=" + "A" * 300 + "\r\n"
        'From: "Alice Example" <alice@example.org>\r\n'
        "To: Bob <bob@example.com>, carol@example.com\r\n"
        "Cc: team@example.org\r\n"
        "Subject: =?utf-8?q?Quarterly_report_=E2=80=93_draft?=\r\n"
        "Date: Mon, 2 Sep 2024 10:00:00 +0200\r\n"
        "Message-ID: <abc.123@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="=_alt_123"\r\n\r\n'
    )
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Sed do eiusmod.\r\n" * 30
    html = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n" * 35
    return (
        header
        + "--=_alt_123\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + text
        + "--=_alt_123\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>"
        + html
        + "</body></html>\r\n--=_alt_123--\r\n"
    ).encode()


@pytest.mark.slow
def test_throughput() -> None:
    msg = typical_message()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        compute_facts(msg)
        n += 1
    rate = n / (time.perf_counter() - t0)
    print(f"compute_facts: {rate:.0f} messages/s of {len(msg)} octets")
    assert rate > 300
