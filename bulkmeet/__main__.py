from __future__ import annotations

from bulkmeet.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
