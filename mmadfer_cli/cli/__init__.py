"""The ``mmadfer`` command (``app``) and its sub-commands, one module each: flags and printing."""

from mmadfer_cli.run.allocator import one_arena

# Before any module here imports numpy or torch: one malloc arena for all threads keeps the
# model's freed blocks for its next batch in the pipeline's threads too (run/allocator.py).
one_arena()
