"""Application services: what the API calls (accounts, workflows, executions, leads, contacts)."""
