"""BIAN Position Keeping: the running positions and balances of accounts."""
