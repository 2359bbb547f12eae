"""The ``mmadfer`` command (``app``) and its sub-commands, one module each: flags and printing."""
