"""Protocol components (http, logger, resource-manager) and their entry-point registry."""

from wbsrun.protocols.http import HttpComponent, HttpResult
from wbsrun.protocols.logger import LoggerComponent
from wbsrun.protocols.registry import build_components, component_factories, provides
from wbsrun.protocols.resource_manager import ResourceManagerComponent

__all__ = [
    "HttpComponent",
    "HttpResult",
    "LoggerComponent",
    "ResourceManagerComponent",
    "build_components",
    "component_factories",
    "provides",
]
