"""Allow ``python -m mmadfer_cli``."""

from mmadfer_cli.cli import main

main()
