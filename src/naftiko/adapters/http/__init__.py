"""HTTP pieces every adapter shares: Host/Origin checks, inbound auth, problems, bodies."""
