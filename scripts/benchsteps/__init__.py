"""Steps of scripts/bench.py kept in modules of their own (not launchers: bench.py imports them)."""
