"""The outbound port (``Agent``) and its adapters: the simulator and the webhook agent."""

from reachflow.agents.port import Agent, AgentCall, AgentError, DispatchReceipt, DispatchRequest
from reachflow.agents.simulator import SimulatorAgent

__all__ = [
    "Agent",
    "AgentCall",
    "AgentError",
    "DispatchReceipt",
    "DispatchRequest",
    "SimulatorAgent",
]
