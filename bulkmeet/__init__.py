"""bulkmeet: Microsoft Teams meetings in bulk from a class schedule sheet."""
from __future__ import annotations

__version__ = "0.2.0"
