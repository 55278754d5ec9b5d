"""Tests of the GitHub emulator itself."""
