"""caldp: calibration data pipeline for HST observations."""

__version__ = "0.1.0"
