"""Running an annotate: options, planning, the chunk path, the engines that schedule it."""
