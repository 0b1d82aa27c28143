"""Running one plan in several processes (``--workers``): the supervisor (``multiprocess``) forks
the workers (``worker``), each an ordinary ``run.single.execute`` of its share."""

from fetchheads.run.supervisor.multiprocess import supervise

__all__ = ["supervise"]
