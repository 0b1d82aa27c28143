"""``python -m fetchheads``, and the ``fetchheads`` command's entry point (``run``)."""

import sys


def run() -> None:
    """``cli.main``, imported here rather than at the top: a Ctrl-C while the program is still
    importing (click, asyncio, ssl: the first ~0.1 s) ends it quietly with 130, as a Ctrl-C a
    moment later does, instead of with a traceback from the middle of an import."""
    try:
        from fetchheads.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
