"""The one exception the analysis tools raise for bad input."""


class AnalysisError(ValueError):
    """Bad or missing input, stated in one line so a CLI can print it as is."""
