"""``python -m bulkmeet.emulator``: the same command as ``bulkmeet emulator``."""
from __future__ import annotations

from bulkmeet.emulator.command import emulator

if __name__ == "__main__":  # pragma: no cover
    emulator.main(prog_name="bulkmeet emulator")
