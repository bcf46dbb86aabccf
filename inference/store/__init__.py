"""The store: every Redis key of the installation."""
