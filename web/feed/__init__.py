"""The event feed: stored events to subscribers over SSE and WebSocket, filtered and resumable."""
