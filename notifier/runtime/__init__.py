"""The running daemon: the service that wires polling, store and delivery, configuration
reload, the supervisor of delivery worker processes, and logging."""
