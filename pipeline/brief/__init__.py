"""The brief: what a run produces and what `validate`, `show` and the renderers read.

- entries.py: the claim and synthesis entries, their statuses and status words, the assembled dict
- check.py: checking a stored brief (`counterpoint validate`)
- markdown.py: brief.md; html.py: brief.html (Jinja2, templates/brief.html.j2)

Both renderers import only the entries, never each other. `Brief` is the finished result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .check import check_brief
from .entries import STATUS_LABELS, assemble, claim_entry, failure, overall_status, status_label, synthesis_entry
from .markdown import render_markdown

__all__ = [
    "STATUS_LABELS",
    "Brief",
    "assemble",
    "check_brief",
    "claim_entry",
    "failure",
    "overall_status",
    "render_markdown",
    "status_label",
    "synthesis_entry",
]


@dataclass(frozen=True)
class Brief:
    """A finished brief: the validated dict, where it was written (if it was), and the article
    text its quote offsets refer to (the HTML page highlights the quotes in it)."""

    data: dict[str, Any]
    run_dir: Path | None = None
    article_text: str | None = None

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def claims(self) -> list[dict[str, Any]]:
        return self.data["claims"]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        return render_markdown(self.data)

    def to_html(self) -> str:
        """One self-contained page: the article with its quotes highlighted, the cards, the synthesis."""
        # Imported here so that importing pipeline.brief (validate, the progress lines) does not load
        # jinja2. A run that calls the model has usually loaded it already: it compiles the template
        # while the first request is out (engine).
        from .html import render_html

        if self.article_text is None:
            raise ValueError("this Brief has no article_text; the HTML page highlights quotes in it")
        return render_html(self.data, self.article_text)
