"""Real loopback test infrastructure: a delaying TCP proxy, a `transformers serve` launcher, test doubles.

Used by the test suite and the reliability tests; nothing here runs in production.
"""
