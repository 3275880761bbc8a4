"""Test support code: real S3 server fixtures and a fault-injecting TCP proxy."""
