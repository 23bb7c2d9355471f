"""WARC and WET input (Common Crawl's formats) for `corpus build`, read with warcio.

- WET ``conversion`` records already hold the page text: one document each.
- WARC ``response`` records with an HTML body: the main text is extracted with trafilatura with the
  settings of datatrove's `Trafilatura` extractor that FineWeb and FineWeb-2 used (``favor_precision``,
  no comments, deduplicated lines).
- Responses that are not HTML, or HTML with no main text, are rejected with the reason; ``warcinfo``,
  ``request`` and ``metadata`` records are not documents and are skipped.

Each document keeps ``url`` (WARC-Target-URI, what the ``blocklist`` step reads), ``date`` and the
WARC-Record-ID as its id.
"""

from __future__ import annotations

from collections.abc import Iterator

from warcio.archiveiterator import ArchiveIterator

from ..io import RejectCounter

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")


def is_warc(path: str) -> bool:
    return path.lower().endswith(WARC_SUFFIXES)


def _html_text(body: bytes, content_type: str) -> str | None:
    import trafilatura

    charset = content_type.partition("charset=")[2].split(";")[0].strip() or "utf-8"
    try:
        html = body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        html = body.decode("utf-8", errors="replace")
    return trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True)


def iter_warc(path: str, rejects: RejectCounter, text_field: str = "text") -> Iterator[dict]:
    """Documents of one WARC/WET file (plain or gzipped); unusable responses go to ``rejects``."""
    with open(path, "rb") as stream:
        for number, record in enumerate(ArchiveIterator(stream), start=1):
            if record.rec_type not in ("conversion", "response"):
                continue
            headers = record.rec_headers
            meta = {"id": headers.get_header("WARC-Record-ID") or f"{path}#{number}",
                    "url": headers.get_header("WARC-Target-URI") or "", "date": headers.get_header("WARC-Date") or ""}
            body = record.content_stream().read()
            if record.rec_type == "conversion":
                try:
                    yield {**meta, text_field: body.decode("utf-8")}
                except UnicodeDecodeError:
                    rejects.add(path, number, "invalid UTF-8 in WET record", body.decode("utf-8", "replace"))
                continue
            content_type = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
            if "html" not in content_type.lower():
                rejects.add(path, number, f"not HTML ({content_type or 'no content type'})", meta["url"])
                continue
            text = _html_text(body, content_type)
            if not text:
                rejects.add(path, number, "no main text in the HTML", body.decode("utf-8", "replace"))
                continue
            yield {**meta, text_field: text}
