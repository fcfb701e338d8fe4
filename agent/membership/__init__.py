"""Membership: the live agents of a group, from one Kubernetes Lease per member.

* :mod:`agent.membership.observe` -- liveness by observation (pure: no API, no clock of
  the other side), as client-go's leader election judges it;
* :mod:`agent.membership.lease` -- this member's Lease (create, renew, fence, leave) and
  the group's Leases (list + watch), turned into the view an
  :class:`~agent.engine.ownership.Ownership` holds;
* :mod:`agent.membership.lending` -- inside one pod with ``--processes N``: the primary
  worker is the pod's member and lends tasksets to helper workers when it is busy.
"""
