"""The package's exception types.

Every error ``mygpt`` raises on bad input derives from :class:`MyGPTError`, so a caller can catch
them all at once, and each message names the problem and says what to do about it.
"""

from __future__ import annotations


class MyGPTError(Exception):
    """Base class of every error raised by ``mygpt`` on bad input or bad state."""


class ConfigError(MyGPTError, ValueError):
    """A model or training configuration is invalid (e.g. heads not dividing the width)."""


class PromptError(MyGPTError, ValueError):
    """A prompt cannot be used (empty, or longer than the model's context)."""


class SamplingError(MyGPTError, ValueError):
    """A sampling parameter is out of range (temperature, top-k, top-p, max tokens)."""


class TokenizerError(MyGPTError, TypeError):
    """The tokenizer was given something it cannot encode or decode."""


class DataError(MyGPTError, ValueError):
    """A data file is missing, failed to download, or does not match its expected hash/shape."""


class CheckpointError(MyGPTError, ValueError):
    """A checkpoint or weight file is missing, corrupt, or does not fit the model."""


class TrainingError(MyGPTError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class ToolError(MyGPTError, ValueError):
    """A tool call cannot be run (unknown tool, or an argument the tool does not accept)."""
