"""Identity: passwords, devices and their bearer tokens, principals and scope."""
