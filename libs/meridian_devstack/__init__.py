"""Meridian's local stack: backing servers and services as plain processes, no cluster."""
