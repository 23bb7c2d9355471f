"""PII masking: e-mail and IP addresses with datatrove's replacers, plus phone numbers.

Each kind is replaced by one fixed, harmless value (RFC 2606 example domain, a documentation IP range,
a fictional 555-01xx number) rather than datatrove's rotating list, so two copies of the same page stay
identical after masking and exact dedup still finds them.
"""

from __future__ import annotations

from functools import partial

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.formatters.pii import PIIFormatter, PIIReplacer, public_ip_validator

from .accounting import AccountedStep

EMAIL_REPLACEMENT = "email@example.com"
IP_REPLACEMENT = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never a real host
PHONE_REPLACEMENT = "+1-555-0100"  # reserved for fiction

# International numbers (+CC ...), national numbers with a trunk 0 (010-1234-5678, 030 1234 5678,
# 03-1234-5678) and North-American (555) 123-4567 / 555-123-4567. Plain digit runs, years and dates
# do not match: every form needs a "+", a leading 0 or brackets, and separators between groups.
PHONE_PATTERN = (
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]?\d{2,4}){2,4}"
    r"|\(?0\d{1,3}\)?[ .-]\d{3,4}[ .-]\d{4}"
    r"|\(\d{3}\) ?\d{3}-\d{4}|\d{3}-\d{3}-\d{4}"
    r")(?!\w)"
)


def _plausible_phone(match: str) -> bool:
    digits = sum(ch.isdigit() for ch in match)
    return 8 <= digits <= 15  # E.164 allows at most 15 digits


class PiiMasker(AccountedStep):
    """Masks e-mail addresses, public IP addresses and phone numbers; keeps every document."""

    type = "✂️ - FORMAT"
    name = "pii"
    step_name = "pii"

    def __init__(self, emails: bool = True, ips: bool = True, phones: bool = True):
        super().__init__()
        self.emails, self.ips, self.phones = emails, ips, phones
        self.replacers = []
        base = PIIFormatter(email_replacement=EMAIL_REPLACEMENT, ip_replacement=IP_REPLACEMENT)
        if emails:
            self.replacers.append(("email", base.emails_replacer))
        if ips:
            self.replacers.append(("ip", PIIReplacer(base.ip_replacer.regex.pattern, IP_REPLACEMENT,
                                                     partial(public_ip_validator, public_only=True))))
        if phones:
            self.replacers.append(("phone", PIIReplacer(PHONE_PATTERN, PHONE_REPLACEMENT, _plausible_phone)))

    def mask(self, text: str) -> tuple[str, list[str]]:
        """The masked text and the kinds of PII that were found."""
        found = []
        for kind, replacer in self.replacers:
            masked = replacer.replace(text)
            if masked != text:
                found.append(kind)
                text = masked
        return text, found

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            self.count_in(doc)
            with self.track_time():
                doc.text, found = self.mask(doc.text)
            for kind in found:
                self.stat_update(f"masked_docs|{kind}")
            self.count_kept(doc)
            yield doc
