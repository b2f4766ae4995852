"""Clip-level data sets in their distributed layouts, one module each: the clips, and a synthetic stand-in."""
