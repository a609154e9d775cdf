"""Writes for OAuth clients and grants, one topic a module."""
