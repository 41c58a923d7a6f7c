"""The error every layer raises for a setting that cannot work, so none has to import a higher layer to raise it."""


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says what to change."""
