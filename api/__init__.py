"""FastAPI service and web page over the recsys search services."""
