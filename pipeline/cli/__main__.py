"""``python -m pipeline.cli``: the same as the ``guardline`` command."""

from pipeline.cli import main

main()
