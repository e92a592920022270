"""qrvey-iac: Qrvey datasets, shared datasets and dataset views as code."""

__version__ = "0.1.0"
