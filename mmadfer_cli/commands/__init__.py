"""Sub-commands of ``mmadfer``, one module each."""
