"""The exception tree of roadnet.

Code raises these; the service maps them to HTTP status codes in one place (``service/errors.py``) and
the CLI prints their message. Messages are written for the user: they say what is wrong and what to do.
"""

import re


class RoadnetError(Exception):
    """Base of every error roadnet raises on purpose."""


class InputError(RoadnetError):
    """The user's input cannot be processed (bad file, bad option)."""


class UnreadableRasterError(InputError):
    """The file is not a raster GDAL can read, or it is truncated."""


class NotGeoreferencedError(InputError):
    """The raster has no CRS or geotransform where one is required."""


class BandCountError(InputError):
    """The raster has fewer bands than an RGB image needs."""


class SceneSizeError(InputError):
    """The scene is smaller than one model window, or larger than the configured limit."""


class TooLargeError(InputError):
    """The upload is larger than the configured size limit."""


class GeoreferenceError(InputError):
    """The scene's georeference is unusable: not finite, a pixel size of zero, off the globe, or a CRS
    that cannot be transformed to longitude/latitude."""


class NoValidPixelsError(InputError):
    """Too few of the scene's pixels hold data (no data, NaN or infinite) to find roads in."""


class SceneCheckTimeoutError(InputError):
    """Checking the scene took longer than the configured deadline (a pathological file)."""


class SceneTooSlowError(InputError):
    """At the workers' measured speed, the scene would take longer than the job time limit."""


class TooManyJobsError(RoadnetError):
    """The caller already has as many queued and running jobs as one key may have."""


class StorageFullError(RoadnetError):
    """The data directory is full (no space, or over quota): nothing was stored."""


class StorageReadOnlyError(RoadnetError):
    """The data directory cannot be written (read-only): nothing was stored."""


class FetchError(InputError):
    """A scene given by reference (a URL) cannot be fetched: refused by the address guard, unreachable,
    too large or too slow."""


class NotFoundError(RoadnetError):
    """A job, result or file that does not exist (or is not the caller's)."""


class NoSuchProcessError(NotFoundError):
    """A process id this service does not run."""


class NoSuchJobError(NotFoundError):
    """A job that does not exist, or is not the caller's."""


class ResultNotReadyError(NotFoundError):
    """The results of a job that has not finished yet."""


class JobFailedError(RoadnetError):
    """The results of a job that failed: the message is the job's own."""


class AuthenticationError(RoadnetError):
    """A missing or unknown API key."""


class QueueUnavailableError(RoadnetError):
    """The job queue (the Celery broker) cannot be reached, so a job cannot be started now."""


class ModelError(RoadnetError):
    """The model file is missing, unreadable, or lacks the metadata inference needs."""


#: An absolute path in a message: a slash-led run of path characters after a space, quote or bracket.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"/:,;()\[\]]+/)*([^\s'\"/:,;()\[\]]+)")


def redact_paths(text: str) -> str:
    """``text`` with every absolute path shortened to its last part: messages reach users, and the
    server's layout is none of their business."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


class MissingDependencyError(RoadnetError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'roadnet[{extra}]'"
            + (" (and torch==2.13.0 for a CPU-only build)" if package == "torch" else "")
        )
        self.package = package
        self.extra = extra
