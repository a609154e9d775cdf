"""Writes for LDAP directories, one job a module."""
