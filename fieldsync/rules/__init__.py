"""Pure rules of front-end enforcement and back-end diversion: plain data in, decisions out."""
