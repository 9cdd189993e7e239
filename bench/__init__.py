"""Benchmarks behind ``make bench``; each module's ``run(settings)`` returns a Markdown section."""
