"""BIAN Current Account: the customer's transactional account and its facilities."""
