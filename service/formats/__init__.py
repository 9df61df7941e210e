"""Dataset file formats (CSV, Parquet, NPZ): reading, limits, statistics; and figures rendered to
PNG/SVG.
"""
