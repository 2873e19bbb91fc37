"""Finding ACM's approval link in a mail that SES stored: pure functions, no AWS.

ACM's validation mail names the certificate ("Certificate Identifier:" with the
full ARN today, the bare UUID before November 2020; the link's ``context``
starts with it too) and links to
``https://<region>.acm-certificates.amazon.com/approvals?code=...&context=...``
(older mails: ``<region>.certificates.amazon.com`` or ``certificates.amazon.com``).

The bucket receives whatever anyone mails to the domain, so a link counts only
when it is https on one of those hosts, and only in a mail that names OUR
certificate. Mail is untrusted input: malformed MIME gives None, never an
exception.
"""
from __future__ import annotations

import email
import email.policy
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

APPROVAL_HOST = re.compile(r"^(?:[a-z0-9-]+\.)?(?:acm-)?certificates\.amazon\.com$")
URL_IN_TEXT = re.compile(r"https://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?"


def certificate_id(certificate_arn: str) -> str:
    """The UUID at the end of a certificate ARN: what ACM's mail names."""
    return certificate_arn.rsplit("/", 1)[-1].lower()


def find_approval_link(raw: bytes, certificate_arn: str) -> str | None:
    """The approval link for this certificate in a raw MIME message, or None."""
    cert_id = certificate_id(certificate_arn)
    texts, links = _read(raw)
    names_ours = re.compile(rf"(?<![0-9a-f]){re.escape(cert_id)}(?![0-9a-f])", re.IGNORECASE)
    if not any(names_ours.search(text) for text in texts + links):
        return None
    candidates = [link for link in links if is_approval_link(link) and _context_allows(link, cert_id)]
    candidates.sort(key=lambda link: _context_id(link) != cert_id)  # the exact match first
    return candidates[0] if candidates else None


def is_approval_link(url: str) -> bool:
    """An https link to ACM's approval page, never a look-alike host or user@host trick."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "https" and parts.username is None and parts.password is None
            and port in (None, 443) and APPROVAL_HOST.match(parts.hostname or "") is not None
            and parts.path == "/approvals" and "code" in parse_qs(parts.query))


def _context_id(link: str) -> str | None:
    """The certificate UUID the link's context starts with, if it has one."""
    context = parse_qs(urlsplit(link).query).get("context", [""])[0]
    found = UUID.match(context)
    return found.group(0).lower() if found else None


def _context_allows(link: str, cert_id: str) -> bool:
    """A link whose context names another certificate belongs to that one."""
    return _context_id(link) in (None, cert_id)


def _read(raw: bytes) -> tuple[list[str], list[str]]:
    """The decoded text of every text part, and every link found in them."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = list(message.walk())
    except (TypeError, ValueError, LookupError, IndexError, AttributeError):
        return [], []
    texts, links = [], []
    for part in parts:
        kind = _content_type(part)
        if kind not in ("text/plain", "text/html"):
            continue
        text = _decoded(part)
        if kind == "text/html":
            page = _Page()
            try:
                page.feed(text)
                page.close()
            except (AssertionError, ValueError):  # HTMLParser's reaction to some broken markup
                pass
            links += [href.strip() for href in page.hrefs]
            text = " ".join(page.text)
        texts.append(text)
        links += [m.group(0).rstrip(TRAILING_PUNCTUATION) for m in URL_IN_TEXT.finditer(text)]
    return texts, links


def _content_type(part) -> str:
    try:
        return part.get_content_type()
    except (TypeError, ValueError, LookupError, IndexError, AttributeError):
        return ""


def _decoded(part) -> str:
    """The part's text: transfer encoding undone (quoted-printable soft breaks included), charset applied."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload.decode(charset, errors="replace")
    except (LookupError, TypeError, ValueError):
        return payload.decode("utf-8", errors="replace")


class _Page(HTMLParser):
    """Collects hrefs (entities such as &amp; already unescaped) and visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]

    def handle_data(self, data):
        self.text.append(data)
