"""``Store``: every database operation, grouped by what it touches, named by verb."""

from __future__ import annotations

from reachflow.store.accounts import Accounts, AgentHealth
from reachflow.store.agent_calls import AgentCalls
from reachflow.store.contacts import Contacts
from reachflow.store.database import Database
from reachflow.store.executions import Executions
from reachflow.store.idempotency import IdempotencyKeys
from reachflow.store.public_sessions import PublicSessions
from reachflow.store.queue import Queue
from reachflow.store.webhooks import Webhooks
from reachflow.store.workflows import Workflows


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.accounts = Accounts()
        self.agent_calls = AgentCalls()
        self.agent_health = AgentHealth()
        self.workflows = Workflows()
        self.executions = Executions()
        self.queue = Queue()
        self.contacts = Contacts()
        self.idempotency = IdempotencyKeys()
        self.public_sessions = PublicSessions()
        self.webhooks = Webhooks()
