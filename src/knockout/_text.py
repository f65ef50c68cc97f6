"""Text safe for one line of a terminal or a log: a file name cannot forge a line or move the cursor."""

from __future__ import annotations

__all__ = ["printable"]

_CONTROLS = {i: f"\\x{i:02x}" for i in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t", 127: "\\x7f"}


def printable(text: str, *, escape_controls: bool = True) -> str:
    """``text`` safe for a log line: name bytes that are not UTF-8 as ``\\udcXX``; newlines, other controls escaped."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.translate(_CONTROLS) if escape_controls else text
