"""Request and error bodies as pydantic models: the first pass of request validation
(``api/bodies.py``) and, from the same models, the OpenAPI document (``api/openapi.py``).

The services keep their own, deeper checks and receive the raw JSON object.
"""

from reachflow.api.schemas.common import ErrorBody, ErrorItem
from reachflow.api.schemas.feather import (
    AgentCreate,
    AgentUpdate,
    CancelTarget,
    ConsentCreate,
    ExecutionBulkCreate,
    ExecutionCreate,
    ExecutionUpdate,
    InboundText,
    SuppressionCreate,
    WorkflowCreate,
    WorkflowUpdate,
)
from reachflow.api.schemas.graph import (
    EdgeCreate,
    GraphWorkflowCreate,
    GraphWorkflowUpdate,
    LeadCsv,
    LeadRow,
    LeadUpload,
    NodeCreate,
    NodeUpdate,
)

__all__ = [
    "AgentCreate",
    "AgentUpdate",
    "CancelTarget",
    "ConsentCreate",
    "EdgeCreate",
    "ErrorBody",
    "ErrorItem",
    "ExecutionBulkCreate",
    "ExecutionCreate",
    "ExecutionUpdate",
    "GraphWorkflowCreate",
    "GraphWorkflowUpdate",
    "InboundText",
    "LeadCsv",
    "LeadRow",
    "LeadUpload",
    "NodeCreate",
    "NodeUpdate",
    "SuppressionCreate",
    "WorkflowCreate",
    "WorkflowUpdate",
]
