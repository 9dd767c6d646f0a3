"""Helpers the test tiers share: harnesses, fixtures and corpus loaders."""
