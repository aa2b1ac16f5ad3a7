"""Container images for what the charts run, built locally from Debian, PyPI, npm and Go modules (opt-in)."""
