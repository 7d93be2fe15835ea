"""Test support for Meridian services: real backing servers and a service runner."""
