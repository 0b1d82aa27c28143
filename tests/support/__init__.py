"""Test helpers: scripted loopback servers, a real nginx, TLS certificates."""
