"""Stand-ins for EKS and AWS on 127.0.0.1, for irsa-session's tests, examples, benchmarks and tools.

Never shipped in the irsa-session wheel: ``pip install ./testing`` from the
checkout (every nox session does).  One module per concern: ``tokens``,
``clock``, ``servers`` (loopback and recording bases, FakeSTS), ``moto``,
``agent``, ``s3proxy``, ``chainsts``, ``scenarios``, ``datastack``.  Python 3.7
syntax; this package imports nothing, and only ``scenarios`` imports
irsa_session, so the vendored row can install it beside a copied package.
"""

__all__ = ["ROLE_ARN", "ISSUER", "SUBJECT"]

#: The role the pod's service account is annotated with (AWS_ROLE_ARN).
ROLE_ARN = "arn:aws:iam::111122223333:role/team/data-reader"
#: The cluster's OIDC issuer: the ``iss`` of every token made here.
ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
#: The pod's service account: the ``sub`` of every token made here.
SUBJECT = "system:serviceaccount:team-a:default-editor"
