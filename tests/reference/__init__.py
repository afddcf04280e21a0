"""Faithful ports of official scorers, written from reading the original sources (cited in each
file). They are the oracles of the differential tests: keep their logic as the original's, quirks
included; never "fix" them."""
