"""The brief: what a run produces and what `validate`, `show` and the renderers read.

- entries.py: the claim and synthesis entries, their statuses and status words, the assembled dict
- model.py: the finished brief as typed frozen objects (`Brief`, `Claim`, `Rebuttal`, ...)
- check.py: checking a stored brief (`counterpoint validate`)
- markdown.py: brief.md; html.py: brief.html (Jinja2, templates/brief.html.j2)

Both renderers import only the entries, never each other.
"""

from __future__ import annotations

from .check import check_brief
from .entries import STATUS_LABELS, assemble, claim_entry, failure, overall_status, status_label, synthesis_entry
from .markdown import render_markdown
from .model import (
    ArticleInfo,
    Brief,
    Check,
    Claim,
    Failure,
    MissingContext,
    Rebuttal,
    RhetoricalDevice,
    RunUsage,
)

__all__ = [
    "STATUS_LABELS",
    "ArticleInfo",
    "Brief",
    "Check",
    "Claim",
    "Failure",
    "MissingContext",
    "Rebuttal",
    "RhetoricalDevice",
    "RunUsage",
    "assemble",
    "check_brief",
    "claim_entry",
    "failure",
    "overall_status",
    "render_markdown",
    "status_label",
    "synthesis_entry",
]
