"""Word documents (.docx) turned into an Article through python-docx.

Each paragraph of the document (headings included) becomes a paragraph of the text, separated by
a blank line, in document order with table rows among them; the text then goes through
`article.from_text` like any other input. The title and author come from the document's
properties, else from its first heading and the text itself.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

from .article import DEFAULT_MAX_CHARS, Article, from_text
from .errors import InputError

# Word writes these when nobody set a title or author: not metadata anyone chose.
_PLACEHOLDERS = frozenset({"", "python-docx", "microsoft office user", "administrator", "user", "author", "owner"})
_HEADING_STYLES = ("Title", "Heading")
# An encrypted Office file is an OLE compound file holding the encrypted package, not a ZIP.
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def is_docx(raw: bytes) -> bool:
    """A ZIP whose parts include word/document.xml (an .odt or .xlsx is a ZIP too, and is refused)."""
    if not raw.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as package:
            return "word/document.xml" in package.namelist()
    except zipfile.BadZipFile:
        return False


def from_docx(raw: bytes, source: str, *, max_chars: int = DEFAULT_MAX_CHARS, truncate: bool = False) -> Article:
    """The article in a .docx file, its paragraphs as paragraphs."""
    import docx  # imported here: only Word input needs it
    from docx.opc.exceptions import PackageNotFoundError

    if raw.startswith(OLE_SIGNATURE):
        raise InputError(
            f"{source} is password-protected (or an old .doc); remove the password or save it as .docx, "
            "then pass that file"
        )
    try:
        document = docx.Document(io.BytesIO(raw))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InputError(
            f"{source} is not a readable .docx ({type(exc).__name__}); open it in Word and save it again, "
            "or save its text to a file and pass that"
        ) from None
    paragraphs = list(_blocks(document))
    if not paragraphs:
        raise InputError(f"{source} holds no text; give a document with the article in it")
    properties = document.core_properties
    heading = next((text for text, is_heading in paragraphs if is_heading), None)
    return from_text(
        "\n\n".join(text for text, _ in paragraphs),
        source,
        max_chars=max_chars,
        truncate=truncate,
        title=_chosen(properties.title) or heading,
        author=_chosen(properties.author),
    )


def _blocks(document: Any) -> Iterator[tuple[str, bool]]:
    """(text, is a heading) for each non-empty paragraph and table row, in document order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = " ".join(paragraph.text.split())
            if text:
                style = paragraph.style.name if paragraph.style is not None else ""
                yield text, style.startswith(_HEADING_STYLES)
        elif tag == "tbl":
            for row in Table(element, document).rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    yield " | ".join(cells), False


def _chosen(value: str | None) -> str | None:
    """A property someone set, or None for an empty one or a program's placeholder."""
    value = (value or "").strip()
    return value if value.lower() not in _PLACEHOLDERS else None
