"""Supply-chain audit: locked Python requirements and base image packages at their newest releases."""
