"""The pipeline on a Ray cluster (``mmadfer annotate --engine ray``).

``connect`` joins or starts a cluster; ``remote`` is what runs on its workers
(planning a video, running a chunk, the model and GPU detector service actors);
``driver`` schedules chunks with a bound on those in flight and turns their
results into the same per-video results as the local engine, for the same sink.
"""
