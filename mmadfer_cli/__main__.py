"""Allow ``python -m mmadfer_cli``."""

from mmadfer_cli.cli.app import main

main()
