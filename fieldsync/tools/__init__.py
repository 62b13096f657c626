"""Small operational helpers used by the Makefile and CI."""
