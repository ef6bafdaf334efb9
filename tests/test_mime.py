"""The MIME messages' header fast path (notifications/render.py ``_Compat32``) writes exactly
what the stdlib's compat32 folding writes, for any header value."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.policy import Policy

from hypothesis import example, given, settings
from hypothesis import strategies as st

from notifications import render

NAMES = st.sampled_from(["Subject", "To", "From", "Message-ID", "X-Odd17-Key", "Date"])
# printable ASCII and the blanks folding cares about, around the 78-column limit
VALUES = st.text(st.sampled_from([*map(chr, range(32, 127)), "\t", "\n", "\r", " "]),
                 max_size=160)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
@example([("Subject", "x" * 68), ("Subject", "x" * 69), ("Subject", "x" * 70)])
@example([("Subject", " lead"), ("Subject", "trail "), ("To", "a  b"), ("To", "")])
def test_the_fast_policy_writes_what_compat32_writes(headers: list[tuple[str, str]]) -> None:
    message = MIMEMultipart("alternative", boundary="=_odd17_test")
    for name, value in headers:
        message[name] = value
    assert written(message, render._ASCII_SMTP) == written(message, render._ASCII_SMTP_SLOW)


def written(message: MIMEMultipart, policy: Policy) -> bytes | str:
    """The bytes, or the error (a value with an embedded header is refused alike)."""
    try:
        return message.as_bytes(policy=policy)
    except HeaderParseError as exc:
        return f"refused: {exc}"


def test_encoded_headers_still_go_through_header_folding() -> None:
    message = MIMEMultipart("alternative", boundary="=_odd17_test")
    message["Subject"] = Header("Décision du comité " * 5, "utf-8")  # type: ignore[assignment]
    fast = message.as_bytes(policy=render._ASCII_SMTP)
    assert fast == message.as_bytes(policy=render._ASCII_SMTP_SLOW)
    assert b"=?utf-8?" in fast


# text with its line breaks as "\n" (the MIME parts carry CRLF)
BODY = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")) | st.just("\n"),
               max_size=300)


@settings(max_examples=200, deadline=None)
@given(BODY, BODY, st.text(min_size=1, max_size=40))
def test_the_boundary_from_the_key_never_cuts_a_body(text: str, html: str, key: str) -> None:
    import datetime as dt
    import email

    boundary = f"=_odd17_{render._digest(key)}"
    text, html = f"{text}\n--{boundary}\n{text}", f"--{boundary}--{html}"
    rendered = render.Rendered("Objet", text, html)
    data = render.build_message(rendered, sender="F <f@example.org>", recipient="a@example.org",
                                key=key, now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)).data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    parts = [part.get_content().replace("\r\n", "\n") for part in parsed.iter_parts()]
    assert parts == [text, html]
