"""Make text safe to print: model output and article metadata must not drive the user's terminal.

A brief, a title or an error can carry escape sequences (set the window title, clear the screen,
hyperlinks, cursor moves) or bidi overrides that make text read differently than it is. Everything
counterpoint prints goes through `clean` (or `clean_json` for JSON) on its way out; the stored
files keep the text exactly as it was.
"""

from __future__ import annotations

import re

# ECMA-48, in its 7-bit (ESC) and 8-bit (C1) forms: a CSI sequence, then string commands (OSC,
# DCS, SOS, PM, APC) through their terminator, then any other escape (an unterminated string
# command loses only its introducer: what follows is then plain text).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x7e]?"
)
# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings, overrides and isolates.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL_CHARS = re.compile(f"[{_CONTROL}]")
_LINE_BREAKS = re.compile(r"\s*[\n\r\t\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")


def clean(text: str, *, one_line: bool = False) -> str:
    """`text` without escape sequences and control characters; with `one_line`, line breaks and
    tabs become single spaces (error lines, table cells)."""
    text = _ESCAPE_SEQUENCE.sub("", text)
    if one_line:
        text = _LINE_BREAKS.sub(" ", text)
    return _CONTROL_CHARS.sub("", text)


def clean_json(text: str) -> str:
    """JSON text with every control character written as a \\u escape: the same data, safe to print.

    Valid JSON holds such characters raw only inside strings, where the escape means the same."""
    return _CONTROL_CHARS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
