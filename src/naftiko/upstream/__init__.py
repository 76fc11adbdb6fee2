"""Upstream: one send path to consumed APIs (request building, outbound auth, client, transport)."""
