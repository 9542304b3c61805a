"""Danube Connect sink package."""
