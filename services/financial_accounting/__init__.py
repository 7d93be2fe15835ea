"""BIAN Financial Accounting: the double-entry general ledger postings."""
