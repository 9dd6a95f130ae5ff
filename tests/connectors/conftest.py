"""Fixtures of the connectors' tests: the real Redmine's, for the modules that use it."""

from redmine_real import real_redmine

__all__ = ["real_redmine"]
