"""The result table: row schema, writers and sinks (parts, resume, the lock), reading back."""
