"""Request and response models shared by the API, the services and the tasks (no web framework inside)."""
