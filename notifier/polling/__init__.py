"""Polling Roomlio: the HTTP client, one tailer per room, the scheduler that paces them, room
leases shared between instances, and the quarantine of messages that cannot be read."""
