"""The service as an MCP (Model Context Protocol) server: the same tools over streamable HTTP at `/mcp` on the API,
over stdio (`python -m backend.mcp`) and in-process for the assistant's tool loop."""
