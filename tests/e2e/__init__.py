"""End-to-end tests: the real bot against the loopback Discord emulator and fake Nekos API."""
