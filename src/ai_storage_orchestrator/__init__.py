"""ai-storage-orchestrator: move AI-training pods between nodes without re-running finished work."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ai-storage-orchestrator")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

API_GROUP = "ai-storage.io"
API_VERSION = "v1alpha1"
