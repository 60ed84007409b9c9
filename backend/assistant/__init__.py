"""The assistant: a chat over the service's MCP tools with the user's own LLM key."""
