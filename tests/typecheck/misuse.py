"""Code the type checker must refuse: the tests-newest-3.11 row checks that mypy fails here.

Each line is a mistake the annotations exist to catch.
"""

from irsa_session import assume_role, assumed_role_session, pod_identity_session

assumed_role_session(duration_seconds="900")  # a string for an int
assumed_role_session(policy_arns=7)  # not a list of ARNs
assume_role()  # role_arn is required
pod_identity_session("http://169.254.170.23/v1/credentials")  # keyword-only
