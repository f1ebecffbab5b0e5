"""ai-storage-orchestrator: move AI-training pods between nodes without re-running finished work."""

from importlib.metadata import PackageNotFoundError, version

from ai_storage_orchestrator.conventions import API_GROUP as API_GROUP
from ai_storage_orchestrator.conventions import API_VERSION as API_VERSION

try:
    __version__ = version("ai-storage-orchestrator")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
