"""The Dagster side every defs module shares: resources, automation conditions, metadata, contract checks.

``defs/`` holds only definitions and imports from here, never from another defs module; the work itself lives
in the plain packages (no Dagster import there).
"""
