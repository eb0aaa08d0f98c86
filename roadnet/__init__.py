"""roadnet: road extraction from satellite imagery, served as a web service.

This package holds what every part shares: settings, the exception tree, logging and the CLI.
"""

__version__ = "0.1.0"
