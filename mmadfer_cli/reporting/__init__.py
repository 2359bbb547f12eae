"""What a result table becomes for people: summaries, timelines, the report, overlays, exports."""
