"""Sending e-mail over SMTP (aiosmtplib): what the dispatcher's e-mail channel and the admin's
template test-send share."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from shared import templates
from shared.settings import MailSettings

# Flattened with lines up to RFC 5322's 998 characters: at the usual 78 the library folds a long
# List-Unsubscribe URL into RFC 2047 encoded words, which mail clients do not decode in that header
# (RFC 2369), and the one-click link would be lost.
MAIL_POLICY = policy.SMTP.clone(max_line_length=998)


class MailRefused(Exception):
    """The mail could not be sent; ``permanent`` when trying again cannot help (no personal data in it)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    sender: str
    timeout_s: float = 10.0
    username: str | None = None
    password: str | None = None
    starttls: bool = False

    @classmethod
    def from_settings(cls, settings: MailSettings) -> Mailer | None:
        """The configured mail server, or None without ``PROACT_SMTP_HOST``."""
        if not settings.smtp_host:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.email_from,
            settings.smtp_timeout_s,
            settings.smtp_username,
            password,
            settings.smtp_starttls,
        )

    def compose(
        self,
        to: str,
        subject: str,
        text: str,
        locale: str,
        headers: dict[str, str] | None = None,
        html: str | None = None,
    ) -> EmailMessage:
        """The message; with ``html``, multipart/alternative with the text first (the part a client
        that cannot show HTML, or a reader who prefers text, gets)."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = subject
        for name, value in (headers or {}).items():
            mail[name] = value
        mail.set_content(text)
        if html is not None:
            mail.add_alternative(html, subtype="html")
        mail["Content-Language"] = locale  # after set_content, which resets the Content-* headers
        return mail

    def compose_rendered(
        self,
        to: str,
        locale: str,
        parts: templates.Parts,
        headers: dict[str, str] | None = None,
        footer: tuple[str, str] | None = None,
        subject_prefix: str = "",
    ) -> EmailMessage:
        """The e-mail of a rendered template (``shared.templates.render``): its subject, its text, and
        its HTML in the shared layout; ``footer`` is (text, HTML) put under both. Raises ValueError when
        the layout does not render within its budget."""
        subject, text = templates.subject_of(parts), templates.text_of(parts)
        html = templates.email_html(locale, subject, text, parts.get("html"), footer[1] if footer else None)
        plain = templates.plain(text) + (f"\n\n--\n{templates.plain(footer[0])}\n" if footer else "")
        return self.compose(to, subject_prefix + templates.plain(subject), plain, locale, headers, html=html)

    async def send(self, mail: EmailMessage, to: str) -> None:
        try:
            await aiosmtplib.send(
                mail.as_bytes(policy=MAIL_POLICY),
                sender=parseaddr(self.sender)[1],  # the envelope's bare address
                recipients=[to],
                hostname=self.host,
                port=self.port,
                timeout=self.timeout_s,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
            )
        except aiosmtplib.SMTPRecipientsRefused:
            raise MailRefused("the mail server refused the recipient", permanent=True) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailRefused(f"mail server: {type(exc).__name__}", permanent=False) from None
