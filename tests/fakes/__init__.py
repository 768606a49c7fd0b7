"""Simulated hardware for end-to-end tests: a Jetson Orin NX root, a fake tegrastats, a jtop stand-in."""
