"""Writes for single sign-on, one topic a module."""
