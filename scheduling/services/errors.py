"""The reply loop's typed errors: bad ids from a task, and broken invariants that must stop a write."""


class ReplyPlanInvalid(ValueError):
    """The plan task got ids that do not name a person message of that conversation."""


class ReplyInvariantViolated(RuntimeError):
    """A row or a call broke an invariant the reply loop relies on; the transaction rolls back."""


class DeliveryConflict(ReplyInvariantViolated):
    """A claimed row stopped being pending under our lock: a writer bypassed it; the batch rolls back."""
