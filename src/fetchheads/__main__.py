"""``python -m fetchheads``."""

from fetchheads.cli import main

if __name__ == "__main__":
    main()
