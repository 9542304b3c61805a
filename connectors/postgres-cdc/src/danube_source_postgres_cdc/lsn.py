"""Log sequence numbers: PostgreSQL writes them as ``X/Y`` (two hex halves of a 64-bit position)."""

from __future__ import annotations

__all__ = ["format_lsn", "parse_lsn"]


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` -> 0x16B374D848. Raises ValueError for anything else."""
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    """0x16B374D848 -> ``"16/B374D848"`` (what ``$1::text::pg_lsn`` accepts)."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
