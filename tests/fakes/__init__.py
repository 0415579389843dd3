"""Local stand-ins for upstream APIs that the end-to-end tests talk to over 127.0.0.1."""
