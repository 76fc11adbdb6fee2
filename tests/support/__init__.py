"""Helpers for end-to-end tests: real loopback servers and polling."""
