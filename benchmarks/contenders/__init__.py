"""One module per (workload, contender); each exposes ``make(inputs) -> epoch factory``."""
