"""Fairness: audit by group, mitigation, drift monitoring; synthetic data with a planted gap."""
