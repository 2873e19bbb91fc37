"""Finding ACM's approval link in MIME mail as SES stores it: built here, in the formats ACM has used."""
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from provision.aws.approval import certificate_id, find_approval_link, is_approval_link

CERT_ID = "3b4d78e1-0882-4f51-954a-298ee44ff369"
ARN = f"arn:aws:acm:us-east-1:123456789012:certificate/{CERT_ID}"
OTHER_ID = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
OTHER_ARN = f"arn:aws:acm:us-east-1:123456789012:certificate/{OTHER_ID}"
REGION_HEX = "75732d656173742d31"  # "us-east-1", as ACM appends it to the context
LINK = (f"https://us-east-1.acm-certificates.amazon.com/approvals?code=11e23c40-7a2b-4754-a97c-1607e8e78a6c"
        f"&context={CERT_ID}-{REGION_HEX}")
OLD_LINK = f"https://certificates.amazon.com/approvals?code=5c0a2e47-2b1d-4f7e-9a55-0f3d8e1c6b21&context={CERT_ID}"


def body(identifier: str = ARN, link: str = LINK) -> str:
    """ACM's current template (docs: 'Automate AWS Certificate Manager email validation')."""
    return ("Greetings from Amazon Web Services,\n\n"
            "We received a request to issue an SSL/TLS certificate for api.example.com.\n\n"
            "Verify that the following domain, AWS account ID, and certificate identifier correspond\n"
            "to a request from you or someone in your organization.\n\n"
            "Domain: api.example.com\nAWS account ID: 123456789012\nAWS Region name: us-east-1\n"
            f"Certificate Identifier: {identifier}\n\n"
            "To approve this request, go to Amazon Certificate Approvals\n"
            f"({link})\nand follow the instructions on the page.\n\nSincerely,\nAmazon Web Services\n")


def html(identifier: str = ARN, link: str = LINK) -> str:
    href = link.replace("&", "&amp;")
    return (f"<html><body><p>Greetings from Amazon Web Services,</p><table><tr><td>Certificate Identifier</td>"
            f"<td>{identifier}</td></tr></table><p>To approve this request, go to "
            f'<a href="{href}" target="_blank">Amazon Certificate Approvals</a>.</p></body></html>')


def headers(msg, subject: str = "Certificate request for api.example.com"):
    msg["From"] = "Amazon Certificate Manager <no-reply@certificates.amazon.com>"
    msg["To"] = "admin@api.example.com"
    msg["Subject"] = subject
    return msg


def plain(text: str, cte: str | None = None) -> bytes:
    msg = headers(EmailMessage())
    msg.set_content(text, cte=cte) if cte else msg.set_content(text)
    return msg.as_bytes()


def test_plain_text_mail_gives_the_link():
    assert find_approval_link(plain(body()), ARN) == LINK


def test_old_format_with_bare_id_and_old_host():
    raw = plain(body(identifier=CERT_ID, link=OLD_LINK))
    assert find_approval_link(raw, ARN) == OLD_LINK


def test_html_only_mail_gives_the_unescaped_href():
    msg = headers(EmailMessage())
    msg.set_content(html(), subtype="html")
    raw = msg.as_bytes()
    assert b"&amp;context=" in raw
    assert find_approval_link(raw, ARN) == LINK


def test_quoted_printable_soft_line_breaks_inside_the_url():
    part = MIMEText(body(), "plain", "utf-8")
    del part["Content-Transfer-Encoding"]
    part.set_payload(body().replace("=", "=3D"))
    long_line = part.get_payload()
    # Break the URL with soft line breaks ("=" at the end of a line), as mailers do after 76 characters.
    broken = long_line.replace("acm-certificates.amazon", "acm-certifi=\ncates.amazon").replace(
        f"context=3D{CERT_ID}", f"context=3D{CERT_ID[:10]}=\n{CERT_ID[10:]}")
    part.set_payload(broken)
    part["Content-Transfer-Encoding"] = "quoted-printable"
    raw = headers(part).as_bytes()
    assert b"=\n" in raw and LINK.encode() not in raw.replace(b"=3D", b"=")
    assert find_approval_link(raw, ARN) == LINK


def test_base64_body():
    raw = plain(body(), cte="base64")
    assert b"Content-Transfer-Encoding: base64" in raw and b"approvals" not in raw
    assert find_approval_link(raw, ARN) == LINK


def test_multipart_alternative_with_plain_and_html():
    msg = headers(MIMEMultipart("alternative"))
    msg.attach(MIMEText(body(), "plain", "utf-8"))
    msg.attach(MIMEText(html(), "html", "utf-8"))
    assert find_approval_link(msg.as_bytes(), ARN) == LINK


def test_mail_about_another_certificate_is_ignored():
    other_link = LINK.replace(CERT_ID, OTHER_ID)
    raw = plain(body(identifier=OTHER_ARN, link=other_link))
    assert find_approval_link(raw, ARN) is None
    assert find_approval_link(raw, OTHER_ARN) == other_link


def test_link_whose_context_names_another_certificate_is_ignored():
    raw = plain(body(identifier=ARN, link=LINK.replace(CERT_ID, OTHER_ID)))
    assert find_approval_link(raw, ARN) is None


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage \x80\x81 not a mail at all",
    b"Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; charset=no-such\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    b"Content-Type: text/html\r\n\r\n<a href='https://certificates.amazon.com/appro",
    bytes(range(256)) * 4,
])
def test_junk_gives_none_without_exception(raw):
    assert find_approval_link(raw, ARN) is None


def test_unknown_charset_still_reads_the_link():
    raw = plain(body()).replace(b'charset="utf-8"', b'charset="x-unknown"')
    assert b"x-unknown" in raw
    assert find_approval_link(raw, ARN) == LINK


@pytest.mark.parametrize("host", [
    "certificates.amazon.com.evil.example",
    "us-east-1.certificates.amazon.com.evil.example",
    "evil-certificates.amazon.com",
    "certificates-amazon.com",
    "certificates.amazon.co",
])
def test_phishing_look_alike_host_is_ignored(host):
    phishing = f"https://{host}/approvals?code=11e23c40-7a2b-4754-a97c-1607e8e78a6c&context={CERT_ID}"
    assert find_approval_link(plain(body(link=phishing)), ARN) is None


@pytest.mark.parametrize("url, ok", [
    (LINK, True),
    (OLD_LINK, True),
    ("https://eu-west-1.certificates.amazon.com/approvals?code=1&context=2", True),
    ("http://certificates.amazon.com/approvals?code=1&context=2", False),
    ("https://certificates.amazon.com@evil.example/approvals?code=1", False),
    ("https://evil.example@certificates.amazon.com/approvals?code=1", False),
    ("https://certificates.amazon.com:8443/approvals?code=1", False),
    ("https://certificates.amazon.com/elsewhere?code=1", False),
    ("https://certificates.amazon.com/approvals?context=2", False),
    ("https://certificates.amazon.com:bad/approvals?code=1", False),
])
def test_is_approval_link(url, ok):
    assert is_approval_link(url) is ok


def test_a_phishing_link_beside_the_real_one_is_skipped():
    phishing = f"https://certificates.amazon.com.evil.example/approvals?code=1&context={CERT_ID}"
    text = body().replace("and follow", f"or {phishing} and follow")
    text = text.replace("Amazon Certificate Approvals\n", f"Amazon Certificate Approvals {phishing}\n")
    assert find_approval_link(plain(text), ARN) == LINK


def test_certificate_id_is_the_arn_tail():
    assert certificate_id(ARN) == CERT_ID
