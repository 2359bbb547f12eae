"""The help of ``--engine`` and ``--ray-address``, which annotate and doctor both take: written
once, so that the two commands describe them the same way. They are rich markup: a literal
``[`` is written ``\\[``."""

from __future__ import annotations

ENGINE_HELP = (
    "local: this machine's threads. ray: a Ray cluster "
    r'(from the clone: pip install -e ".\[ray]"): chunks run as Ray tasks, the model (and the face '
    "detector on GPUs) in one actor per GPU."
)
RAY_ADDRESS_HELP = (
    r"With --engine ray: the cluster to join (auto, or HOST:PORT). \[default: RAY_ADDRESS, else "
    "a new Ray on this machine]"
)
