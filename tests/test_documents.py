"""Word (.docx) and PDF submissions: real files built here with python-docx and fpdf2, read through
`sources.load` and run end to end against the fake server (the seed article, so its quotes verify)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from pipeline import sources
from pipeline.brief import check_brief
from pipeline.errors import InputError

from .conftest import ROOT, one_error_line, read_brief, read_manifest

SEED = (ROOT / "seeds" / "putin-assad-syria.txt").read_text("utf-8")
BLOCKS = [" ".join(block.split()) for block in SEED.split("\n\n") if block.strip()]
TITLE, STANDFIRST, BODY = BLOCKS[0], BLOCKS[1], BLOCKS[2:]
# Helvetica (a PDF core font) has no typographic quotes; quote matching folds them anyway.
LATIN1 = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-"})


def words(text: str) -> Counter[str]:
    return Counter(re.findall(r"[a-z0-9]+", text.lower().replace("’", "'")))


def coverage(document_text: str, extracted: str) -> float:
    """The share of the document's words (with their counts) that the extracted text holds."""
    wanted, got = words(document_text), words(extracted)
    return sum(min(count, got[word]) for word, count in wanted.items()) / sum(wanted.values())


def make_docx(path: Path, *, properties: bool = True) -> None:
    document = docx.Document()
    if properties:
        document.core_properties.title = TITLE
        document.core_properties.author = "James Jay Carafano"
    document.add_heading(TITLE, level=1)
    document.add_paragraph(STANDFIRST, style="Subtitle")
    for paragraph in BODY:
        document.add_paragraph(paragraph)
    document.save(path)


class _Paper(FPDF):
    """Pages with a running header, a footer with the page number, as a newspaper prints them."""

    def header(self) -> None:
        self.set_font("Helvetica", "I", 9)
        self.cell(0, 8, "The Meridian Ledger - Opinion - March 15, 2016", align="C")
        self.ln(12)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "", 9)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def hyphenate(paragraph: str) -> str:
    """Break the paragraph's longest word across a line with a hyphen, as typesetting does."""
    word = max(re.findall(r"[A-Za-z]{9,}", paragraph) or [""], key=len)
    if not word:
        return paragraph
    return paragraph.replace(word, f"{word[:4]}-\n{word[4:]}", 1)


def make_pdf(path: Path, *, repeat: int = 2) -> str:
    """A multi-page PDF of the seed article; returns the text it holds (without header and footer)."""
    pdf = _Paper()
    pdf.set_title(TITLE.translate(LATIN1))
    pdf.set_author("James Jay Carafano")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 9, TITLE.translate(LATIN1))
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 11)
    # A longer article: the body again in reverse order (the same text at the same place on two
    # pages would rightly read as a running header).
    paragraphs = [STANDFIRST, *BODY, *reversed(BODY)][: 1 + len(BODY) * repeat]
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, hyphenate(paragraph.translate(LATIN1)))
        pdf.ln(3)
    pdf.output(str(path))
    return "\n".join([TITLE, *paragraphs])


def test_docx_keeps_paragraphs_headings_and_properties(tmp_path: Path) -> None:
    path = tmp_path / "oped.docx"
    make_docx(path)
    loaded = sources.load(str(path))
    assert loaded.title == TITLE and loaded.author == "James Jay Carafano"
    assert loaded.text.split("\n\n") == BLOCKS
    assert coverage(SEED, loaded.text) >= 0.99


def test_docx_without_properties_takes_its_first_heading_and_byline(tmp_path: Path) -> None:
    path = tmp_path / "oped.docx"
    document = docx.Document()
    document.add_heading("Stadiums are a bad bet.", level=1)
    document.add_paragraph("By Jane Roe | January 14, 2015")
    for paragraph in BODY:
        document.add_paragraph(paragraph)
    document.save(path)
    loaded = sources.load(str(path))
    assert (loaded.title, loaded.author, loaded.date, loaded.date_text) == (
        "Stadiums are a bad bet.",
        "Jane Roe",
        "2015-01-14",
        "January 14, 2015",
    )


def test_pdf_drops_running_headers_and_page_numbers_and_repairs_hyphenation(tmp_path: Path) -> None:
    path = tmp_path / "oped.pdf"
    source_text = make_pdf(path)
    loaded = sources.load(str(path))
    assert loaded.title == TITLE.translate(LATIN1) and loaded.author == "James Jay Carafano"
    assert "Meridian Ledger - Opinion" not in loaded.text
    assert not re.search(r"^Page \d+$", loaded.text, re.MULTILINE)
    paragraphs = loaded.text.split("\n\n")
    # Every paragraph comes back whole (a page break inside one does not split it), words unbroken.
    for paragraph in [STANDFIRST, *BODY]:
        assert paragraph.translate(LATIN1) in paragraphs, paragraph[:60]
    assert len(paragraphs) == 2 + 2 * len(BODY)
    assert coverage(source_text, loaded.text) >= 0.95


def test_a_compound_hyphen_at_a_line_end_is_kept_when_the_document_spells_it_so(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "", 11)
    text = " ".join(BODY[:4]).translate(LATIN1)
    pdf.multi_cell(0, 6, f"A well-known problem. {text} It is a well-\nknown fact and a differ-\nent one.")
    path = tmp_path / "compound.pdf"
    pdf.output(str(path))
    loaded = sources.load(str(path))
    assert "a well-known fact and a different one." in loaded.text


@pytest.mark.parametrize("kind", ["docx", "pdf"])
def test_a_document_produces_a_complete_brief_whose_quotes_verify(cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"oped.{kind}"
    expected = SEED
    if kind == "docx":
        make_docx(path)
    else:
        expected = make_pdf(path, repeat=1)
    result = cli("run", str(path), "--no-cache")
    assert result.exit_code == 0, result.stderr
    text = (result.run_dir / "article.txt").read_text("utf-8")
    assert coverage(expected, text) >= 0.95
    brief = read_brief(result.run_dir)
    assert brief["status"] == "complete"
    assert check_brief(brief, text) == []
    assert brief["claims"] and all(text[c["start"] : c["end"]] == c["quote"] for c in brief["claims"])
    assert read_manifest(result.run_dir)["article"]["author"] == "James Jay Carafano"


def test_a_document_on_stdin_is_recognised_by_its_content(cli, tmp_path: Path) -> None:
    path = tmp_path / "oped.docx"
    make_docx(path)
    loaded = sources.load(str(path))
    renamed = tmp_path / "submission"
    renamed.write_bytes(path.read_bytes())
    assert sources.load(str(renamed)).text == loaded.text


def _encrypted_pdf(path: Path) -> None:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, " ".join(BODY).translate(LATIN1))
    pdf.output(str(path))


def _scanned_pdf(path: Path) -> None:
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.rect(20, 20, 170, 250, style="F")  # a page that is only a picture
    pdf.output(str(path))


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("locked.pdf", _encrypted_pdf, "is encrypted (password-protected); save an unprotected copy"),
        ("scan.pdf", _scanned_pdf, "has no text layer to read (a scanned PDF?); run OCR on it"),
        ("cut.pdf", lambda path: path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog"), "is not a readable PDF"),
        ("cut.docx", lambda path: path.write_bytes(b"PK\x03\x04" + b"\x00" * 200), "is not a readable .docx"),
        ("notes.pdf", lambda path: path.write_text("Just a note.", encoding="utf-8"), "is named .pdf but is not a PDF"),
        (
            "locked.docx",
            lambda path: path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600),
            "is password-protected (or an old .doc); remove the password",
        ),
    ],
)
def test_unreadable_documents_get_a_one_line_error(cli, tmp_path: Path, name, make, says) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(InputError, match=re.escape(says)):
        sources.load(str(path))
    result = cli("run", str(path))
    assert result.exit_code == 1
    assert says in one_error_line(result)


def test_other_zip_archives_are_still_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("content.xml", "<office:document-content/>")
    path = tmp_path / "essay.odt"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(InputError, match=r"is a ZIP archive \(or an \.odt/\.xlsx document\), not an article"):
        sources.load(str(path))


def test_a_batch_folder_sends_pdfs_to_the_pdf_reader(cli, server, runs_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    expected = make_pdf(folder / "oped.pdf", repeat=1)
    (folder / "notes.pdf").write_text("Just a note.", encoding="utf-8")
    result = cli("batch", str(folder), "-q", "--no-cache", "--runs-dir", str(runs_dir), "--base-url", server.base_url)
    assert result.exit_code == 3, result.stderr  # one article failed
    rows = {row["id"]: row for row in map(json.loads, (Path(result.stdout.strip()) / "batch.jsonl").open())}
    assert rows["oped.pdf"]["status"] == "complete"
    text = (Path(rows["oped.pdf"]["run"]) / "article.txt").read_text("utf-8")
    assert coverage(expected, text) >= 0.95
    error = rows["notes.pdf"]["error"]
    assert rows["notes.pdf"]["status"] == "failed" and "\n" not in error
    assert "is named .pdf but is not a PDF" in error and "words" not in error
